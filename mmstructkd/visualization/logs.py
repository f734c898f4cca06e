"""Select, group and smooth the series of mmengine's ``scalars.json`` logs
(read by :mod:`mmstructkd.utils.training_logs`).

mmengine's ``LocalVisBackend`` writes one JSON object per line to
``<work_dir>/<timestamp>/vis_data/scalars.json``: training lines carry the
logged losses (``student.*``, ``distill.*``, ``disc.*``), the loss weights
of ``DistillLossWeightScheduleHook`` (``distill_weight.*``), ``lr``,
``iter`` and ``step``; validation lines carry the metrics and ``step``.
"""
import fnmatch
from typing import Dict, List, Sequence, Tuple

import numpy as np

from mmstructkd.utils.training_logs import find_scalars, load_scalars

__all__ = [
    'DEFAULT_KEY_PATTERNS', 'KEY_GROUPS', 'find_scalars', 'load_scalars',
    'series', 'select_keys', 'key_group', 'moving_average'
]

# What analyze_logs plots unless told otherwise: every distillation term, the
# student's own losses, the scheduled loss weights and the critic's terms.
DEFAULT_KEY_PATTERNS = ('distill.*', 'distill_weight.*', 'student.*',
                        'disc.*')
# Group of a key (for panel titles and order), by prefix.
KEY_GROUPS = (('distill_weight.', 'loss weight (schedule hook)'),
              ('distill.', 'distillation loss'),
              ('student.', 'student task'), ('disc.', 'critic'))
# Logged counters that are plotted only when they are ever non-zero.
COUNTERS = ('nonfinite.skipped', )
# Duplicates left out unless named exactly: the critic's ``d_total`` is its
# ``loss`` (the sum of its loss terms).
REDUNDANT_KEYS = ('disc.d_total', )


def series(records: Sequence[dict],
           key: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of ``key`` over the records that hold it.

    The step is the record's ``step`` (the iteration for training lines
    of an iteration-based run), else its position in the log. A resumed run
    that logs an iteration again keeps the later value.
    """
    by_step: Dict[float, float] = {}
    for position, record in enumerate(records):
        if key in record and isinstance(record[key], (int, float)):
            by_step[record.get('step', position)] = float(record[key])
    steps = np.array(sorted(by_step), dtype=np.float64)
    values = np.array([by_step[s] for s in sorted(by_step)],
                      dtype=np.float64)
    return steps, values


def key_group(key: str) -> str:
    for prefix, group in KEY_GROUPS:
        if key.startswith(prefix):
            return group
    return 'other'


def select_keys(records_per_run: Sequence[Sequence[dict]],
                patterns: Sequence[str] = DEFAULT_KEY_PATTERNS) -> List[str]:
    """Keys of any run matching any pattern (``fnmatch``; an exact key is
    a pattern too), in group order then name. Counters that stay 0, and
    ``REDUNDANT_KEYS`` matched only by a wildcard, are left out."""
    keys = set()
    for records in records_per_run:
        for record in records:
            for key, value in record.items():
                if not isinstance(value, (int, float)):
                    continue
                if any(fnmatch.fnmatchcase(key, p) for p in patterns):
                    keys.add(key)
    silent = {
        key for key in keys if key.endswith(COUNTERS) and not any(
            record.get(key) for records in records_per_run
            for record in records)
    }
    silent |= {key for key in keys
               if key in REDUNDANT_KEYS and key not in patterns}
    order = {group: i for i, (_, group) in enumerate(KEY_GROUPS)}
    return sorted(keys - silent,
                  key=lambda k: (order.get(key_group(k), len(order)), k))


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` values (fewer at the start), same
    length as ``values``."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(values) == 0:
        return values
    sums = np.cumsum(np.insert(values, 0, 0.0))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)
