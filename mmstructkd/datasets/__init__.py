# Imported lazily (the DATASETS registry's `locations`), since the dataset
# classes subclass mmseg's and mmdet's and importing those costs seconds.
from .toy_scenes import ToySceneCocoDataset, ToySceneSegDataset

__all__ = ['ToySceneCocoDataset', 'ToySceneSegDataset']
