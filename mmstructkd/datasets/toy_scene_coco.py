"""The toy street scenes' things as an mmdet COCO data set (needs mmdet, not
mmseg).

The scenes and their COCO files are written by :mod:`mmstructkd.toy_data`
(``python tools/make_toy_data.py``).
"""
from mmdet.datasets import CocoDataset

from mmstructkd.registry import DATASETS
from mmstructkd.toy_data.classes import THING_CLASSES, THING_PALETTE
from mmstructkd.toy_data.writer import MISSING_DATA_HINT
from .empty_dataset import NonEmptyDatasetMixin


@DATASETS.register_module()
class ToySceneCocoDataset(NonEmptyDatasetMixin, CocoDataset):
    """The toy street scenes' things as a COCO instance set (3 classes).

    Example config::

        dict(type='mmstructkd.ToySceneCocoDataset',
             data_root='data/toy_scenes',
             ann_file='annotations/instances_train.json',
             data_prefix=dict(img='img_dir/train/'), pipeline=[...])
    """
    METAINFO = dict(classes=THING_CLASSES, palette=THING_PALETTE)
    EMPTY_HINT = MISSING_DATA_HINT
