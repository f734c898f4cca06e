"""The toy street scenes as an mmseg data set (needs mmseg, not mmdet).

The scenes and their layout are written by :mod:`mmstructkd.toy_data`
(``python tools/make_toy_data.py``).
"""
from mmseg.datasets import BaseSegDataset

from mmstructkd.registry import DATASETS
from mmstructkd.toy_data.classes import CLASSES, PALETTE
from mmstructkd.toy_data.writer import MISSING_DATA_HINT
from .empty_dataset import NonEmptyDatasetMixin


@DATASETS.register_module()
class ToySceneSegDataset(NonEmptyDatasetMixin, BaseSegDataset):
    """The toy street scenes in mmseg's layout (5 classes, no zero reduction).

    Example config::

        dict(type='mmstructkd.ToySceneSegDataset', data_root='data/toy_scenes',
             data_prefix=dict(img_path='img_dir/train',
                              seg_map_path='ann_dir/train'),
             ann_file='splits/train_fit.txt', pipeline=[...])
    """
    METAINFO = dict(classes=CLASSES, palette=PALETTE)
    EMPTY_HINT = MISSING_DATA_HINT

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)
