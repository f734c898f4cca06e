"""Find a checkpoint that is safe to resume from.

Safe means: written completely (an interrupted save leaves a truncated file)
and finite (no NaN/Inf in the weights, buffers or optimizer state; such a
checkpoint would only resume a diverged run). ``tools/train.py --resume``
takes the newest safe checkpoint of the work dir, skipping the others with a
warning, and starts from scratch, saying so, when there is none.
"""
import glob
import os.path as osp
import re
import zipfile
from typing import Any, Iterator, List, Mapping, Optional, Tuple

import torch
from mmengine.logging import print_log

from mmstructkd.models.utils.finite_state import nonfinite_tensors

# Tensor names listed in a message, at most.
MAX_LISTED = 5


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a whole checkpoint written by ``torch.save``.

    ``torch.save`` writes a zip archive whose central directory comes last,
    so an interrupted write (killed job, full disk) leaves a file that does
    not open as a zip; the CRCs of the members are checked too.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def flatten_tensors(prefix: str, value: Any) -> Iterator[Tuple[str, Any]]:
    """``(dotted name, tensor)`` for every tensor in nested dicts/lists."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from flatten_tensors(f'{prefix}.{key}', item)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from flatten_tensors(f'{prefix}.{i}', item)
    elif isinstance(value, torch.Tensor):
        yield prefix, value


def nonfinite_checkpoint_tensors(checkpoint: Mapping) -> List[str]:
    """The NaN/Inf tensors of a checkpoint's weights and optimizer state.

    Every floating tensor under ``checkpoint['state_dict']`` (parameters,
    buffers) and ``checkpoint['optimizer']`` (momentum, Adam moments, the
    AMP loss scale) is checked; the logs in ``message_hub`` are not (a
    skipped step logs its NaN loss, which is a record, not a state). A
    checkpoint without ``state_dict`` is taken as a bare state dict.

    Returns:
        Dotted names such as ``state_dict.architecture.bn1.running_var`` or
        ``optimizer.state.3.momentum_buffer``; empty when all are finite.
    """
    if 'state_dict' not in checkpoint:
        return nonfinite_tensors(flatten_tensors('state_dict', checkpoint))
    named = list(flatten_tensors('state_dict', checkpoint['state_dict']))
    named += flatten_tensors('optimizer', checkpoint.get('optimizer', {}))
    return nonfinite_tensors(named)


def listed(names: List[str]) -> str:
    """``names`` for a message: the first few, then how many more."""
    more = len(names) - MAX_LISTED
    return ', '.join(names[:MAX_LISTED]) + (f' and {more} more'
                                            if more > 0 else '')


def _iteration_of(path: str) -> int:
    match = re.search(r'(?:iter|epoch)_(\d+)\.pth$', osp.basename(path))
    return int(match.group(1)) if match else -1


def checkpoint_candidates(work_dir: str) -> List[str]:
    """Checkpoints of ``work_dir``, newest first: the one ``last_checkpoint``
    names, then ``iter_*.pth`` / ``epoch_*.pth`` by decreasing number."""
    found = sorted(
        glob.glob(osp.join(work_dir, 'iter_*.pth')) +
        glob.glob(osp.join(work_dir, 'epoch_*.pth')),
        key=_iteration_of, reverse=True)
    last_file = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last_file):
        with open(last_file) as f:
            last = f.read().strip()
        if last and last not in found and osp.isfile(last):
            found.insert(0, last)
        elif last in found:
            found.remove(last)
            found.insert(0, last)
    return found


def why_not_resumable(path: str) -> Optional[str]:
    """Why ``path`` cannot be resumed from, or None if it can.

    Reads the whole file (weights-only, memory-mapped): the zip archive's
    CRCs, then every tensor of its weights and optimizer state.
    """
    if not is_complete_checkpoint(path):
        return 'is incomplete (an interrupted save?)'
    try:
        checkpoint = torch.load(
            path, map_location='cpu', weights_only=True, mmap=True)
    except Exception as e:  # what torch.load raises varies by cause
        return f'cannot be read ({type(e).__name__}: {e})'
    if not isinstance(checkpoint, Mapping):
        return f'is not a checkpoint (a {type(checkpoint).__name__})'
    bad = nonfinite_checkpoint_tensors(checkpoint)
    if bad:
        return f'holds NaN/Inf in {len(bad)} tensors ({listed(bad)})'
    return None


def find_resumable_checkpoint(work_dir: str) -> Optional[str]:
    """The newest complete and finite checkpoint of ``work_dir``, or None.

    Each newer checkpoint that is truncated, unreadable or holds NaN/Inf is
    skipped with a warning naming it and why; when one was skipped, the
    outcome is logged too (the checkpoint used, or that there is none).
    """
    skipped = 0
    for path in checkpoint_candidates(work_dir):
        problem = why_not_resumable(path)
        if problem is None:
            if skipped:
                print_log(f'resuming from {path} instead.',
                          logger='current', level=30)
            return path
        skipped += 1
        print_log(f'checkpoint {path} {problem}; skipping it.',
                  logger='current', level=30)
    if skipped:
        print_log(
            f'no complete checkpoint with finite values in {work_dir} '
            f'({skipped} skipped).', logger='current', level=30)
    return None
