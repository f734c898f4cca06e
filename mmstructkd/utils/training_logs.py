"""Read mmengine's ``scalars.json`` training logs: the one reader of them.

mmengine's ``LocalVisBackend`` writes ``<work_dir>/<timestamp>/vis_data/
scalars.json``, one JSON record a line: training lines carry the logged
losses, ``lr``, ``time``, ``iter`` and ``step``; validation lines the
metrics and ``step``. A work dir used more than once (a resumed or repeated
run) holds several timestamped folders: the newest is the one whose name,
mmengine's ``%Y%m%d_%H%M%S``, sorts last (names, unlike file times, survive
copying).
"""
import glob
import json
import os.path as osp
from typing import List

__all__ = ['find_scalars', 'load_scalars']


def find_scalars(path: str) -> str:
    """``path`` itself if it is a file, else the newest
    ``<timestamp>/vis_data/scalars.json`` under the work dir ``path`` (or
    its ``vis_data/scalars.json`` if it has no timestamped one)."""
    if osp.isfile(path):
        return path
    candidates = (
        sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
        or glob.glob(osp.join(path, 'vis_data', 'scalars.json')))
    if not candidates:
        raise FileNotFoundError(
            f'{path!r} is neither a scalars.json file nor a work dir with '
            f'<timestamp>/vis_data/scalars.json in it.')
    return candidates[-1]


def load_scalars(path: str) -> List[dict]:
    """The records of the log :func:`find_scalars` finds at ``path``, in
    order (blank lines skipped)."""
    records = []
    with open(find_scalars(path)) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(
                    f'{path}: line {number} is not JSON ({e}).') from None
    return records
