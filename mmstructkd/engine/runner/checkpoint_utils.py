"""Find a checkpoint that is safe to resume from."""
import glob
import os.path as osp
import re
import zipfile
from typing import List, Optional

from mmengine.logging import print_log


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


def find_resumable_checkpoint(work_dir: str) -> Optional[str]:
    """The newest complete checkpoint of ``work_dir``, or None.

    A truncated newest checkpoint is skipped with a warning naming it, and
    the previous good one is returned.
    """
    for path in checkpoint_candidates(work_dir):
        if is_complete_checkpoint(path):
            return path
        print_log(
            f'checkpoint {path} is incomplete (an interrupted save?); '
            f'resuming from the previous one instead.',
            logger='current', level=30)
    return None
