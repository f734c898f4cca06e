"""Write the toy scenes to disk in mmseg's and COCO's layouts, idempotently.

One scene model feeds two layouts, so segmentation and detection see the very
same pictures:

* mmseg's standard layout: ``img_dir/{split}/NAME.png`` (RGB) and
  ``ann_dir/{split}/NAME.png`` (uint8 class map, values ``0..7``);
* a COCO instance set: ``annotations/instances_{split}.json`` whose
  ``file_name`` is relative to ``img_dir/{split}/`` (see :mod:`.coco`).

The same arguments give byte-identical files. :func:`generate_toy_scenes`
writes a ``manifest.json`` with the parameters and file hashes last; a second
call with the same arguments finds it and does nothing.

Example:
    >>> from mmstructkd.toy_data import generate_toy_scenes
    >>> generate_toy_scenes('data/toy_scenes', num_train=8, num_val=4,
    ...                     size=64)  # doctest: +SKIP
    True
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional

import numpy as np
from PIL import Image

from .coco import DEFAULT_MIN_VISIBLE_AREA, coco_file, scene_annotations
from .renderer import GENERATOR_VERSION, check_layout, make_scene
from .splits import SPLITS, holdout_indices

MANIFEST_NAME = 'manifest.json'
# What the data set classes add to the error of a root with no samples.
MISSING_DATA_HINT = ('; to write the toy scenes there, run '
                     'python tools/make_toy_data.py --out DATA_ROOT')


def default_data_root() -> str:
    """``data/toy_scenes`` under the repository root (found from this file)."""
    repo_root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    return osp.join(repo_root, 'data', 'toy_scenes')


def _write_bytes(path: str, payload: bytes) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(payload)


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format='PNG', optimize=False)
    return buffer.getvalue()


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, separators=(',', ':')) + '\n').encode()


def _read_manifest(out_dir: str) -> Optional[dict]:
    path = osp.join(out_dir, MANIFEST_NAME)
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _is_complete(out_dir: str, manifest: dict) -> bool:
    for rel, entry in manifest.get('files', {}).items():
        path = osp.join(out_dir, rel)
        if not osp.isfile(path) or osp.getsize(path) != entry['bytes']:
            return False
    return True


def generate_toy_scenes(out_dir: Optional[str] = None,
                        num_train: int = 1000,
                        num_val: int = 100,
                        size: int = 96,
                        seed: int = 0,
                        holdout_fraction: float = 0.2,
                        min_area: int = DEFAULT_MIN_VISIBLE_AREA,
                        object_scale: float = 1.0,
                        min_depth: float = 0.0,
                        force: bool = False,
                        verbose: bool = False) -> bool:
    """Write the toy data set in mmseg and COCO layouts (idempotent).

    Layout under ``out_dir``::

        img_dir/{train,val}/{split}_NNNNN.png   RGB pictures
        ann_dir/{train,val}/{split}_NNNNN.png   uint8 class maps (0..7)
        annotations/instances_{train,val,train_fit,train_holdout}.json
        splits/{train,val,train_fit,train_holdout}.txt  names, no suffix
        manifest.json                           parameters + file hashes

    Args:
        out_dir: Output root; defaults to :func:`default_data_root`.
        num_train: Number of training pictures.
        num_val: Number of validation pictures.
        size: Side of the square pictures in pixels.
        seed: Seed of the whole set.
        holdout_fraction: Share of train listed in ``train_holdout`` (the rest
            in ``train_fit``) for choosing hyper-parameters without val.
        min_area: Visible instances smaller than this many pixels are left out
            of the COCO files (they stay in the class maps).
        object_scale: Factor on the size of everything on the street
            (see :func:`render_scene`); 1 for the segmentation scenes.
        min_depth: Nothing stands farther than this perspective depth
            (0 = the horizon, 1 = the bottom row); 0 for the segmentation
            scenes.
        force: Regenerate even when the manifest matches.
        verbose: Print what is done.

    Returns:
        bool: True if files were written, False if the set was up to date.
    """
    out_dir = osp.abspath(out_dir or default_data_root())
    if num_train < 1 or num_val < 1:
        raise ValueError('num_train and num_val must be at least 1, got '
                         f'{num_train} and {num_val}')
    check_layout(object_scale, min_depth)
    params = dict(
        generator_version=GENERATOR_VERSION,
        num_train=int(num_train),
        num_val=int(num_val),
        size=int(size),
        seed=int(seed),
        holdout_fraction=float(holdout_fraction),
        min_area=int(min_area))
    # Only a non-default layout is recorded, so the manifest of a set
    # generated before these options existed still matches.
    if (object_scale, min_depth) != (1.0, 0.0):
        params.update(object_scale=float(object_scale),
                      min_depth=float(min_depth))
    old = _read_manifest(out_dir)
    if (not force and old is not None and old.get('params') == params
            and _is_complete(out_dir, old)):
        if verbose:
            print(f'{out_dir} is up to date ({_describe(params)}); '
                  'nothing to do (use --force to rewrite)')
        return False
    holdout = holdout_indices(num_train, holdout_fraction, seed)

    start = time.perf_counter()
    # Files of an earlier, different set must not linger (e.g. fewer images).
    if old is not None:
        for rel in old.get('files', {}):
            path = osp.join(out_dir, rel)
            if osp.isfile(path):
                os.remove(path)
        manifest_path = osp.join(out_dir, MANIFEST_NAME)
        if osp.isfile(manifest_path):
            os.remove(manifest_path)

    files: Dict[str, dict] = {}

    def write(rel: str, payload: bytes) -> None:
        _write_bytes(osp.join(out_dir, rel), payload)
        files[rel] = {
            'bytes': len(payload),
            'sha256': hashlib.sha256(payload).hexdigest()
        }

    counts = {'train': num_train, 'val': num_val}
    records: Dict[str, List[dict]] = {}
    ann_id = 0
    for split in SPLITS:
        records[split] = []
        for index in range(counts[split]):
            name = f'{split}_{index:05d}'
            scene = make_scene(seed, split, index, size, object_scale,
                               min_depth)
            write(f'img_dir/{split}/{name}.png', _png_bytes(scene.image))
            write(f'ann_dir/{split}/{name}.png', _png_bytes(scene.label))
            annotations = scene_annotations(scene, min_area)
            for ann in annotations:
                ann_id += 1
                ann['id'] = ann_id
                ann['image_id'] = index + 1
            records[split].append({
                'name': name,
                'image': {
                    'id': index + 1,
                    'file_name': f'{name}.png',
                    'height': size,
                    'width': size
                },
                'annotations': annotations,
            })

    held = set(holdout)
    subsets = {
        'train': records['train'],
        'val': records['val'],
        'train_fit': [r for i, r in enumerate(records['train'])
                      if i not in held],
        'train_holdout': [records['train'][i] for i in holdout],
    }
    for subset, chosen in subsets.items():
        write(f'annotations/instances_{subset}.json',
              _json_bytes(coco_file(chosen)))
        write(f'splits/{subset}.txt',
              ''.join(r['name'] + '\n' for r in chosen).encode())

    # The manifest goes last: it marks a complete set.
    manifest = {'params': params, 'files': files}
    _write_bytes(osp.join(out_dir, MANIFEST_NAME), _json_bytes(manifest))
    if verbose:
        print(f'wrote {len(files)} files to {out_dir} ({_describe(params)}) '
              f'in {time.perf_counter() - start:.1f} s')
    return True


def _describe(params: dict) -> str:
    text = (f"{params['num_train']} train + {params['num_val']} val, "
            f"{params['size']}x{params['size']}, seed {params['seed']}")
    if 'object_scale' in params:
        text += (f", objects x{params['object_scale']:g}, depth >= "
                 f"{params['min_depth']:g}")
    return text
