"""The toy scenes' splits: ``train`` and ``val`` (each with its own part of
every image's seed), and the hold-out part of train used to choose
hyper-parameters without looking at val.
"""
from __future__ import annotations

from typing import List

import numpy as np

SPLITS = ('train', 'val')
# Part of the per-image seed, so train and val images never coincide.
SPLIT_CODES = {'train': 0, 'val': 1}
_HOLDOUT_STREAM = 7


def holdout_indices(num_train: int, fraction: float, seed: int) -> List[int]:
    """Indices of the train images held out for hyper-parameter choice."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(
            f'holdout_fraction must be in [0, 1), got {fraction}')
    count = int(round(fraction * num_train))
    rng = np.random.default_rng([int(seed), _HOLDOUT_STREAM])
    return sorted(rng.permutation(num_train)[:count].tolist())
