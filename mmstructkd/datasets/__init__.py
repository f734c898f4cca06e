# Imported lazily (the DATASETS registry's `locations`), since the dataset
# classes subclass mmseg's and mmdet's and importing those costs seconds.
from importlib.util import find_spec

from .empty_dataset import (EmptyDatasetError, NonEmptyDatasetMixin,
                            check_data_folders)

__all__ = ['EmptyDatasetError', 'NonEmptyDatasetMixin', 'check_data_folders']


def _installed(package: str) -> bool:
    """Whether ``package`` can be imported (finding it imports nothing)."""
    try:
        return find_spec(package) is not None
    except ImportError:
        return False


# Each toy data set needs only its own task's package: one not installed
# leaves its data set out instead of breaking the other.
if _installed('mmseg'):
    from .toy_scene_seg import ToySceneSegDataset
    __all__.append('ToySceneSegDataset')
if _installed('mmdet'):
    from .toy_scene_coco import ToySceneCocoDataset
    __all__.append('ToySceneCocoDataset')
