"""Short trainings of the toy configs through ``tools/train.py``.

All of them end their schedule at the run's length: every hook interval and
the poly learning-rate schedule(s) are set from the number of iterations.
"""
from typing import List, Optional

from .processes import check_python


def schedule_options(iters: int, seed: int,
                     val_interval: Optional[int] = None) -> List[str]:
    """``--cfg-options`` for ``iters`` iterations with ``seed``: validate
    (every ``val_interval``, default once at the end), checkpoint at the
    end, log ten times."""
    val_interval = val_interval or iters
    return [
        f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={val_interval}',
        f'default_hooks.checkpoint.interval={iters}',
        f'default_hooks.logger.interval={max(iters // 10, 1)}',
        f'randomness.seed={seed}', 'randomness.deterministic=False',
    ]


def scheduler_options(config: str, iters: int) -> List[str]:
    """End the poly schedule(s) at ``iters`` whatever their layout."""
    from mmengine.config import Config
    sched = Config.fromfile(config).param_scheduler
    if isinstance(sched, dict):
        return [f'param_scheduler.{k}.0.end={iters}' for k in sched]
    return [f'param_scheduler.0.end={iters}']


def train(config: str, work_dir: str, options: List[str], **run_options
          ) -> None:
    """``tools/train.py config --work-dir work_dir --cfg-options options``;
    ``run_options`` as in :func:`~.processes.check_python` (echo, log file,
    threads, environment)."""
    check_python(['tools/train.py', config, '--work-dir', work_dir,
                  '--cfg-options'] + list(options), **run_options)
