# Imported lazily (the DATASETS registry's `locations`), since the dataset
# classes subclass mmseg's and mmdet's and importing those costs seconds.
from .empty_dataset import (EmptyDatasetError, NonEmptyDatasetMixin,
                            check_data_folders)
from .toy_scenes import ToySceneCocoDataset, ToySceneSegDataset

__all__ = [
    'EmptyDatasetError', 'NonEmptyDatasetMixin', 'ToySceneCocoDataset',
    'ToySceneSegDataset', 'check_data_folders'
]
