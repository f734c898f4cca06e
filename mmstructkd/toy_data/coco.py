"""The toy scenes as a COCO instance set: every thing instance carries its
*visible* mask (after occlusion) as compressed RLE, and its box is the tight
box of that mask.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from .classes import CLASSES, COCO_CATEGORY_IDS, COCO_SUPERCATEGORIES
from .renderer import GENERATOR_VERSION, Scene

# Instances whose visible part is smaller than this (in pixels) stay in the
# label maps and in the COCO files, marked ``iscrowd=1``: COCO's way to say
# "ignore this region". Training does not use them as targets, and the
# evaluation neither asks for them nor counts a detection on them as a false
# positive: a few pixels of a far person carry no box to learn.
DEFAULT_MIN_VISIBLE_AREA = 8


def mask_to_rle(mask: np.ndarray) -> Dict[str, object]:
    """COCO compressed RLE of a binary mask (as ``pycocotools`` writes it).

    Runs are counted in column-major order starting with a run of zeros; the
    counts are stored as deltas in 5-bit groups offset by 48 (printable).

    Args:
        mask: ``(H, W)`` binary mask.

    Returns:
        dict: ``{'size': [H, W], 'counts': str}``.
    """
    h, w = mask.shape
    flat = np.asarray(mask, dtype=bool).flatten(order='F')
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    chars = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            group = x & 0x1f
            x >>= 5
            more = x != -1 if group & 0x10 else x != 0
            if more:
                group |= 0x20
            chars.append(chr(group + 48))
    return {'size': [int(h), int(w)], 'counts': ''.join(chars)}


def tight_bbox(mask: np.ndarray) -> List[float]:
    """COCO box ``[x, y, w, h]`` enclosing the mask's pixels exactly."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    x0, x1, y0, y1 = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def coco_categories() -> List[Dict[str, object]]:
    """Categories with ids 1..K in :data:`THING_CLASSES` order."""
    return [{
        'id': COCO_CATEGORY_IDS[cls],
        'name': CLASSES[cls],
        'supercategory': COCO_SUPERCATEGORIES[cls]
    } for cls in sorted(COCO_CATEGORY_IDS, key=COCO_CATEGORY_IDS.get)]


def scene_annotations(scene: Scene,
                      min_area: int = DEFAULT_MIN_VISIBLE_AREA
                      ) -> List[Dict[str, object]]:
    """COCO annotations (without ids) of a scene's visible instances."""
    annotations = []
    for cls, mask in zip(scene.instance_classes, scene.visible_masks()):
        area = int(mask.sum())
        annotations.append({
            'category_id': COCO_CATEGORY_IDS[cls],
            'bbox': tight_bbox(mask),
            'area': float(area),
            'iscrowd': int(area < min_area),
            'segmentation': mask_to_rle(mask),
        })
    return annotations


def coco_file(records: Sequence[dict]) -> dict:
    images, annotations = [], []
    for record in records:
        images.append(record['image'])
        annotations.extend(record['annotations'])
    return {
        'info': {
            'description': 'mmstructkd toy street scenes',
            'version': str(GENERATOR_VERSION),
        },
        'licenses': [],
        'images': images,
        'annotations': annotations,
        'categories': coco_categories(),
    }
