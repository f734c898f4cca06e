"""Save and restore the random number generators with each checkpoint."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from mmstructkd.registry import HOOKS


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Make ``--resume`` continue *exactly* where the run stopped.

    mmengine's resume restores weights, optimizers, schedulers and the
    iteration, and re-seeds the generators from the config; the generators'
    positions are lost. Random augmentations (flips), dropout and the
    adversarial gradient penalty's interpolation then draw different numbers
    than the uninterrupted run would. This hook stores the Python, numpy and
    torch (CPU and, when present, CUDA) generator states in the checkpoint
    and restores them on resume.

    Validation is also kept from consuming the training generators
    (creating the val dataloader's iterator draws a seed from torch's global
    generator): the state is saved before validation and restored after, so
    a run's training randomness does not depend on when it was validated.

    Dataloader workers draw from their own generators (re-created at each
    epoch from the sampler's seed); use ``num_workers=0`` where bit-exact
    resume matters.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._before_val = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['random_state'] = get_random_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('random_state')
        if state is None:
            runner.logger.warning(
                'RandomStateHook: the checkpoint has no random_state (written '
                'without this hook); random numbers after resume will differ '
                'from an uninterrupted run.')
            return
        set_random_state(state)

    def before_train(self, runner) -> None:
        # On resume, mmengine's IterBasedTrainLoop skips the batches already
        # trained on by loading them, which runs their random transforms;
        # that replay must not move the restored generators.
        loop = runner.train_loop
        replays = getattr(loop, '_iter', 0)
        if replays > 0 and hasattr(loop, 'dataloader_iterator'):
            loop.dataloader_iterator = _RandomNeutralReplay(
                loop.dataloader_iterator, replays)

    def before_val(self, runner) -> None:
        self._before_val = get_random_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            set_random_state(self._before_val)
            self._before_val = None


def get_random_state() -> dict:
    """The states of the Python, numpy and torch generators."""
    state = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict) -> None:
    random.setstate(_as_python_state(state['python']))
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


class _RandomNeutralReplay:
    """Iterator proxy whose first ``replays`` items leave the generators
    as they were; later items pass through untouched."""

    def __init__(self, iterator, replays: int) -> None:
        self._iterator = iterator
        self._replays = replays

    def __iter__(self):
        return self

    def __next__(self):
        if self._replays <= 0:
            return next(self._iterator)
        state = get_random_state()
        try:
            return next(self._iterator)
        finally:
            set_random_state(state)
            self._replays -= 1

    def __getattr__(self, name):
        return getattr(self._iterator, name)


def _as_python_state(state):
    # A checkpoint round trip may turn the inner tuple into a list.
    version, internal, gauss = state
    return version, tuple(internal), gauss
