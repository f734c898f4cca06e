"""A picture of a few toy scenes for a quick look: pictures, coloured class
maps and COCO boxes, one column per scene."""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Dict

import numpy as np
from PIL import Image

from .classes import PALETTE, THING_PALETTE


def colourise(label: np.ndarray) -> np.ndarray:
    """``(H, W)`` class map to ``(H, W, 3)`` uint8 RGB with :data:`PALETTE`;
    values outside the classes (e.g. 255 = ignore) become white."""
    lut = np.full((256, 3), 255, np.uint8)
    lut[:len(PALETTE)] = np.array(PALETTE, np.uint8)
    return lut[label]


def save_montage(data_root: str,
                 path: str,
                 split: str = 'train',
                 num: int = 6,
                 zoom: int = 3) -> None:
    """Save pictures (top row), class maps (middle) and COCO boxes (bottom).

    Args:
        data_root: A root written by :func:`generate_toy_scenes`.
        path: Where to write the PNG.
        split: ``'train'`` or ``'val'``.
        num: Number of columns (first ``num`` pictures of the split).
        zoom: Nearest-neighbour magnification.
    """
    with open(osp.join(data_root, f'annotations/instances_{split}.json')) as f:
        coco = json.load(f)
    boxes: Dict[int, list] = {}
    for ann in coco['annotations']:
        boxes.setdefault(ann['image_id'], []).append(ann)
    columns = []
    for info in coco['images'][:num]:
        name = osp.splitext(info['file_name'])[0]
        image = np.array(
            Image.open(osp.join(data_root, 'img_dir', split,
                                info['file_name'])).convert('RGB'))
        label = np.array(
            Image.open(osp.join(data_root, 'ann_dir', split, name + '.png')))
        boxed = image.copy()
        for ann in boxes.get(info['id'], []):
            x, y, w, h = (int(v) for v in ann['bbox'])
            colour = THING_PALETTE[ann['category_id'] - 1]
            boxed[y, x:x + w] = colour
            boxed[y + h - 1, x:x + w] = colour
            boxed[y:y + h, x] = colour
            boxed[y:y + h, x + w - 1] = colour
        gap = np.full((2, image.shape[1], 3), 255, np.uint8)
        columns.append(
            np.concatenate([image, gap, colourise(label), gap, boxed], 0))
    spacer = np.full((columns[0].shape[0], 2, 3), 255, np.uint8)
    grid = np.concatenate(
        [part for col in columns for part in (col, spacer)][:-1], 1)
    grid = grid.repeat(zoom, 0).repeat(zoom, 1)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    Image.fromarray(grid).save(path)
