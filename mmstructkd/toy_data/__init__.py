"""Toy street scenes: a small synthetic data set for CPU-sized experiments.

The generator only; the data set classes that read what it writes are in
:mod:`mmstructkd.datasets` (``ToySceneSegDataset``, ``ToySceneCocoDataset``).
Nothing here imports mmseg or mmdet.

* :mod:`.classes`: the label space (class names, palettes, COCO ids);
* :mod:`.canvas`, :mod:`.street`, :mod:`.objects`: the painter, the street
  and what stands on it;
* :mod:`.renderer`: one scene from one random stream (:func:`make_scene`);
* :mod:`.coco`: COCO annotations of a scene (RLE masks, tight boxes);
* :mod:`.splits`: train / val and the hold-out part of train;
* :mod:`.writer`: the files on disk, idempotent (:func:`generate_toy_scenes`);
* :mod:`.montage`: a picture of a few scenes for a quick look.

Example:
    >>> from mmstructkd.toy_data import generate_toy_scenes
    >>> generate_toy_scenes('data/toy_scenes', num_train=8, num_val=4,
    ...                     size=64)  # doctest: +SKIP
    True
"""
from .classes import (CLASSES, COCO_CATEGORY_IDS, PALETTE, THING_CLASSES,
                      THING_PALETTE)
from .coco import DEFAULT_MIN_VISIBLE_AREA, mask_to_rle, tight_bbox
from .montage import colourise, save_montage
from .renderer import Scene, make_scene, render_scene
from .splits import holdout_indices
from .writer import default_data_root, generate_toy_scenes

__all__ = [
    'CLASSES', 'COCO_CATEGORY_IDS', 'DEFAULT_MIN_VISIBLE_AREA', 'PALETTE',
    'Scene', 'THING_CLASSES', 'THING_PALETTE', 'colourise',
    'default_data_root', 'generate_toy_scenes', 'holdout_indices',
    'make_scene', 'mask_to_rle', 'render_scene', 'save_montage', 'tight_bbox'
]
