"""Never write a checkpoint that holds NaN or Inf."""
import os.path as osp
from typing import List, Optional

from mmengine.hooks import CheckpointHook

from mmstructkd.engine.runner.checkpoint_utils import (
    flatten_tensors, listed, nonfinite_checkpoint_tensors)
from mmstructkd.models.utils.distributed import all_ranks_agree
from mmstructkd.models.utils.finite_state import nonfinite_tensors
from mmstructkd.models.utils.model_wrappers import unwrap_model
from mmstructkd.registry import HOOKS

ADVICE = ('resume (--resume picks the last finite checkpoint) with a lower '
          'learning rate or loss weight, or clip gradients.')


class NonFiniteCheckpointError(RuntimeError):
    """A checkpoint would have held NaN/Inf; it was not written."""


@HOOKS.register_module()
class FiniteCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` that refuses to write NaN or Inf.

    Same arguments and behaviour as ``CheckpointHook``, plus: before a
    checkpoint is saved (periodic, last or best), every floating tensor of
    the model's ``state_dict`` (parameters, buffers such as BatchNorm running
    statistics) and of the optimizer state is checked, on the device, with
    one fused reduction. If any is NaN/Inf, training stops with
    :class:`NonFiniteCheckpointError` naming them, and

    * no checkpoint file is written,
    * no older checkpoint is removed for it (``max_keep_ckpts``), and
    * ``last_checkpoint`` keeps naming the previous, finite checkpoint,

    so ``--resume`` continues from there. All processes of a distributed run
    check and stop together. The check also runs in ``before_save_checkpoint``
    on the checkpoint as assembled (on the CPU), which covers every other
    caller of ``runner.save_checkpoint``.

    ``tools/train.py`` puts it in place of mmengine's ``CheckpointHook``
    for every run (see :func:`use_finite_checkpoint_hook`), without changing
    the config. Elsewhere (e.g. ``mim train``), set
    ``default_hooks.checkpoint.type='mmstructkd.FiniteCheckpointHook'``.

    The cost, per saved checkpoint, is a read of the weights and optimizer
    state on the device and of the assembled checkpoint on the CPU: small
    next to writing the file.
    """

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        # Before CheckpointHook removes the oldest checkpoint and updates
        # last_checkpoint.
        self._refuse_nonfinite(runner, self.filename_tmpl.format(step))
        super()._save_checkpoint_with_step(runner, step, meta)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if self.save_best:
            # Before the previous best checkpoint is removed.
            self._refuse_nonfinite(runner, 'the best checkpoint')
        super()._save_best_checkpoint(runner, metrics)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        bad = nonfinite_checkpoint_tensors(checkpoint)
        if bad:
            raise NonFiniteCheckpointError(
                f'FiniteCheckpointHook: refusing to write a checkpoint at '
                f'iteration {runner.iter + 1}: {len(bad)} tensors are NaN '
                f'or Inf: {listed(bad)}. It was not written. Training has '
                f'diverged: {ADVICE}')

    def _refuse_nonfinite(self, runner, name: str) -> None:
        named = list(flatten_tensors('state_dict',
                                     unwrap_model(runner.model).state_dict()))
        optim_wrapper = getattr(runner, 'optim_wrapper', None)
        if optim_wrapper is not None and hasattr(optim_wrapper,
                                                 'state_dict'):
            named += flatten_tensors('optimizer', optim_wrapper.state_dict())
        bad = nonfinite_tensors(named)
        if not all_ranks_agree(not bad):
            raise NonFiniteCheckpointError(self._message(runner, name, bad))

    def _message(self, runner, name: str, bad: List[str]) -> str:
        what = (f'{len(bad)} tensors are NaN or Inf: {listed(bad)}'
                if bad else 'tensors are NaN or Inf on another process')
        last_file = osp.join(runner.work_dir, 'last_checkpoint')
        last = None
        if osp.isfile(last_file):
            with open(last_file) as f:
                last = f.read().strip()
        return (
            f'FiniteCheckpointHook: refusing to write {name} at iteration '
            f'{runner.iter + 1}: {what}. Nothing was written or removed; '
            f'last_checkpoint still names {last or "no checkpoint"}. '
            f'Training has diverged: {ADVICE}')


def use_finite_checkpoint_hook(runner) -> Optional[FiniteCheckpointHook]:
    """Make the runner's ``CheckpointHook`` a :class:`FiniteCheckpointHook`.

    The hook keeps its settings, state and place among the hooks; only its
    class changes, so the config (and the copy of it stored in each
    checkpoint) still names mmengine's ``CheckpointHook``, and checkpoints
    stay loadable without mmstructkd. A subclass or another checkpoint hook
    is left alone.

    Returns:
        The hook now in place, or None if there was no plain
        ``CheckpointHook``.
    """
    for i, hook in enumerate(runner.hooks):
        if type(hook) is CheckpointHook:
            finite = FiniteCheckpointHook.__new__(FiniteCheckpointHook)
            finite.__dict__.update(hook.__dict__)
            runner.hooks[i] = finite
            return finite
        if isinstance(hook, FiniteCheckpointHook):
            return hook
    return None
