"""Keep mmengine's resume from executing a config stored in a checkpoint.

``Runner.resume`` of mmengine 0.10.7 runs
``Config.fromstring(checkpoint['meta']['config'])`` when that key exists
(mmcv 1.x era checkpoints wrote it; mmengine itself writes ``meta['cfg']``,
which it never executes), only to read ``gpu_ids`` from it. That executes
Python from the checkpoint file. :func:`guard_checkpoint_loader` wraps
mmengine's checkpoint loader (``CheckpointLoader.load_checkpoint``, used by
``Runner.load_checkpoint``, ``resume``, ``load_from`` and ``init_model``) so
that every loaded checkpoint has ``meta['config']`` replaced by
``gpu_ids = [...]`` read as data (:mod:`mmstructkd.utils.config_data`), or
removed. The GPU count check of resume still works; nothing else reads that
key.
"""
from typing import Any

from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from mmstructkd.utils.config_data import ConfigNotDataError, parse_config_data

__all__ = ['neutralize_executable_meta', 'guard_checkpoint_loader']


def neutralize_executable_meta(checkpoint: Any, source: str = '') -> Any:
    """Replace ``checkpoint['meta']['config']`` by data-only text, in place.

    Returns:
        ``checkpoint``.
    """
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict) or 'config' not in meta:
        return checkpoint
    text = meta.pop('config')
    try:
        gpu_ids = parse_config_data(text).get('gpu_ids')
    except ConfigNotDataError as e:
        print_log(
            f'checkpoint {source}: meta["config"] is not plain data ({e}); '
            f'it was dropped, not executed.',
            logger='current', level=30)
        return checkpoint
    if isinstance(gpu_ids, (list, tuple)) and \
            all(type(i) is int for i in gpu_ids):
        meta['config'] = f'gpu_ids = {list(gpu_ids)!r}\n'
    return checkpoint


def guard_checkpoint_loader() -> None:
    """Wrap ``CheckpointLoader.load_checkpoint`` (idempotent)."""
    load = CheckpointLoader.load_checkpoint.__func__
    if getattr(load, '_neutralizes_meta', False):
        return

    def load_checkpoint(cls, filename, *args, **kwargs):
        checkpoint = load(cls, filename, *args, **kwargs)
        return neutralize_executable_meta(checkpoint, str(filename))

    load_checkpoint._neutralizes_meta = True
    load_checkpoint.__doc__ = load.__doc__
    CheckpointLoader.load_checkpoint = classmethod(load_checkpoint)


guard_checkpoint_loader()
