"""Guard a training step against non-finite losses, parameters and buffers.

SKD's adversarial critic is known to blow up: its loss turns NaN/Inf after a
few thousand steps at small batch sizes (official repository issues #25, #28,
#56), and a too high learning rate or loss weight does the same to any
method. One NaN step poisons the weights for good. The training step asks
:class:`NonFiniteGuard` at three points of every optimizer step:

1. :meth:`~NonFiniteGuard.before_step`: copy the module's buffers (cheap, see
   :class:`~mmstructkd.models.utils.finite_state.BufferSnapshot`).
2. :meth:`~NonFiniteGuard.check` the losses, before the update. A step whose
   losses are not all finite is skipped: the caller zeroes the gradients, does
   not call ``step``, and calls :meth:`~NonFiniteGuard.rollback`, which puts
   back the buffers the forward already changed (BatchNorm running
   statistics), so a skipped step leaves the module exactly as it was. A run
   of ``max_consecutive`` bad steps in a row stops training with an error
   naming the terms, since skipping further would only hide a diverged model.
3. :meth:`~NonFiniteGuard.check_state` after the update: every parameter and
   buffer must be finite (one fused check, one host sync). A step with finite
   losses can still produce NaN/Inf (an overflowing update, an infinite
   running variance); the parameters before it are not kept (that would
   double the memory), so training stops with an error naming the tensors,
   before any hook (checkpoint, validation) sees them.

The counters (:meth:`~NonFiniteGuard.state_dict`) are saved with the
checkpoint, so a resumed run keeps counting.

Example:
    >>> guard = NonFiniteGuard(max_consecutive=3)
    >>> guard.check({'loss_d': torch.tensor(1.0)})
    True
    >>> guard.check({'loss_d': torch.tensor(float('nan'))})
    False
    >>> guard.num_skipped, guard.num_consecutive
    (1, 1)
"""
import math
from numbers import Number
from typing import (Any, Callable, Dict, Iterator, List, Mapping, Optional,
                    Sequence, Tuple)

import torch
from torch import Tensor, nn

from .finite_state import BufferSnapshot, named_state, nonfinite_tensors

# Names listed in an error message, at most.
MAX_LISTED = 8


class NonFiniteStateError(RuntimeError):
    """Parameters or buffers became NaN/Inf; training cannot go on."""


def _iter_values(name: str, value: Any) -> Iterator[Tuple[str, Any]]:
    # mmengine loss dicts may hold lists of per-level tensors.
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _iter_values(f'{name}[{i}]', item)
    else:
        yield name, value


def nonfinite_terms(losses: Mapping[str, Any]) -> List[str]:
    """Names of the entries of ``losses`` holding a NaN or an infinity.

    Tensors of any shape (every element is checked), Python numbers and
    lists/tuples of them (reported as ``name[i]``) are inspected; other values
    are ignored. Integer tensors are always finite.

    Args:
        losses: mapping from term name to value.

    Returns:
        The offending names, in the mapping's order (empty if all finite).
    """
    entries: List[Tuple[str, Any]] = []  # (name, bool or 0-d bool tensor)
    for key, value in losses.items():
        for name, item in _iter_values(key, value):
            if isinstance(item, Tensor):
                if item.is_floating_point() or item.is_complex():
                    entries.append((name, torch.isfinite(item.detach()).all()))
            elif isinstance(item, Number) and not isinstance(item, bool):
                entries.append((name, math.isfinite(abs(item))))
    finite: Dict[int, bool] = {}
    on_device: Dict[torch.device, List[int]] = {}
    for i, (_, flag) in enumerate(entries):
        if isinstance(flag, Tensor):
            on_device.setdefault(flag.device, []).append(i)
        else:
            finite[i] = flag
    # One host sync per device rather than one per term.
    for idx in on_device.values():
        values = torch.stack([entries[i][1] for i in idx]).tolist()
        finite.update(zip(idx, values))
    return [name for i, (name, _) in enumerate(entries) if not finite[i]]


def _listed(names: List[str]) -> str:
    shown = ', '.join(names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return shown + (f' and {more} more' if more > 0 else '')


class NonFiniteGuard:
    """Count and limit non-finite training steps; stop on non-finite weights.

    Per optimizer step: :meth:`before_step` (copy the buffers),
    :meth:`check` with the step's losses (True: update; False: skip, then
    :meth:`rollback`), :meth:`check_state` after the update.

    Guarantees, when used so: a skipped step changes neither parameters nor
    buffers (nor the optimizer state); after :meth:`check_state` returns,
    every floating parameter and buffer of the module is finite. It raises
    ``RuntimeError`` on the ``max_consecutive``-th bad step in a row, and
    :class:`NonFiniteStateError` as soon as a parameter or buffer is NaN/Inf
    after a step (whatever ``max_consecutive``: such a state cannot be
    trained on). A good step resets the run of bad ones.

    Args:
        max_consecutive: bad steps in a row that stop training (the
            ``max_consecutive``-th one raises); None never raises for bad
            losses.
        name: what is guarded, used in messages (e.g. ``'discriminator'``).
        option: the config option that sets ``max_consecutive``, quoted in
            the error so the user knows what to change.

    Attributes:
        num_checked: steps checked so far.
        num_skipped: steps found non-finite (skipped) so far.
        num_consecutive: current run of non-finite steps.
        last_bad_terms: names of the non-finite terms of the last bad step.
    """

    #: The counters saved with the checkpoint, in this order.
    COUNTERS = ('num_checked', 'num_skipped', 'num_consecutive')

    def __init__(self,
                 max_consecutive: Optional[int] = 10,
                 name: str = 'loss',
                 option: str = 'max_consecutive') -> None:
        self.name = name
        self.option = option
        if max_consecutive is not None and max_consecutive < 1:
            raise ValueError(
                f'NonFiniteGuard: max_consecutive must be >= 1 or None, got '
                f'{max_consecutive}.')
        self.max_consecutive = max_consecutive
        self.num_checked = 0
        self.num_skipped = 0
        self.num_consecutive = 0
        self.last_bad_terms: List[str] = []
        self._buffers = BufferSnapshot()

    def before_step(self, module: nn.Module) -> None:
        """Copy the buffers of ``module``, for :meth:`rollback`."""
        self._buffers.take(module)

    def rollback(self, module: nn.Module) -> None:
        """Put back the buffers copied by :meth:`before_step` (after a
        skipped step, whose forward already updated them)."""
        self._buffers.restore(module)

    def check(self,
              losses: Mapping[str, Any],
              step: Optional[int] = None,
              agree: Optional[Callable[[bool], bool]] = None) -> bool:
        """Record one step's losses; True if all of them are finite.

        Args:
            losses: mapping from term name to tensor/number (or lists).
            step: the training iteration, for the message (defaults to the
                guard's own count of checked steps).
            agree: called with this process's verdict (True: all finite),
                returns the verdict of all processes (e.g.
                ``all_ranks_agree``). The counters and the decision to stop
                follow the agreed verdict, so they are the same on every
                process and all processes skip, or stop, together.

        Returns:
            True when every term is finite (on every process), False when
            the step should be skipped.

        Raises:
            RuntimeError: on the ``max_consecutive``-th non-finite step in a
                row.
        """
        self.num_checked += 1
        bad = nonfinite_terms(losses)
        finite = not bad if agree is None else agree(not bad)
        if finite:
            self.num_consecutive = 0
            return True
        self.num_skipped += 1
        self.num_consecutive += 1
        self.last_bad_terms = bad
        if self.max_consecutive is not None and \
                self.num_consecutive >= self.max_consecutive:
            where = f'iteration {step}' if step is not None else \
                f'checked step {self.num_checked}'
            terms = ', '.join(bad) if bad else 'the losses of another process'
            raise RuntimeError(
                f'NonFiniteGuard({self.name}): non-finite value in '
                f'{terms} for {self.num_consecutive} steps in a row '
                f'(at {where}; {self.num_skipped} of {self.num_checked} '
                f'checked steps skipped so far). Training has diverged. '
                f'Lower the learning rate or the loss weight, clip gradients, '
                f'or resume from an earlier checkpoint; to tolerate longer '
                f'runs of bad steps raise `{self.option}` (now '
                f'{self.max_consecutive}).')
        return False

    def update_or_skip(self,
                       module: nn.Module,
                       losses: Mapping[str, Any],
                       update: Callable[[], None],
                       discard: Callable[[], None],
                       step: Optional[int] = None,
                       agree: Optional[Callable[[bool], bool]] = None
                       ) -> bool:
        """Finish a step begun with :meth:`before_step`, guarded.

        If every term of ``losses`` is finite (:meth:`check`), ``update()``
        (backward and optimizer step) runs and :meth:`check_state` follows;
        otherwise ``discard()`` (zero the gradients) runs and
        :meth:`rollback` puts back the buffers the forward changed.

        Args:
            module: what the step trains (whose buffers were copied).
            losses: the step's loss terms.
            update: applies the step.
            discard: drops the step's gradients.
            step, agree: as :meth:`check`.

        Returns:
            True if the step was applied, False if it was skipped.
        """
        if not self.check(losses, step, agree):
            discard()
            self.rollback(module)
            return False
        update()
        self.check_state(module, step, agree)
        return True

    def check_state(self,
                    module: nn.Module,
                    step: Optional[int] = None,
                    agree: Optional[Callable[[bool], bool]] = None) -> None:
        """Stop if a parameter or buffer of ``module`` is NaN/Inf.

        Args:
            module: the module just updated.
            step: the training iteration, for the message.
            agree: called with this process's verdict (True: all finite),
                returns the verdict of all processes, so that all stop
                together (e.g. ``all_ranks_agree``).

        Raises:
            NonFiniteStateError: naming the non-finite tensors.
        """
        bad = nonfinite_tensors(named_state(module))
        finite = not bad if agree is None else agree(not bad)
        if finite:
            return
        where = f'iteration {step}' if step is not None else \
            f'checked step {self.num_checked}'
        what = (f'{len(bad)} parameters/buffers are NaN or Inf: '
                f'{_listed(bad)}') if bad else \
            'parameters/buffers are NaN or Inf on another process'
        raise NonFiniteStateError(
            f'NonFiniteGuard({self.name}): after the update at {where}, '
            f'{what}. Its losses were finite, so the update itself diverged '
            f'(learning rate or loss weight too high, or exploding '
            f'gradients). Training stops: these weights are not kept, and no '
            f'checkpoint holds them. Resume (--resume) from the last '
            f'checkpoint with a lower learning rate or loss weight, or clip '
            f'gradients.')

    def state_dict(self) -> Dict[str, int]:
        """The counters (:attr:`COUNTERS`) to save with the checkpoint."""
        return {key: getattr(self, key) for key in self.COUNTERS}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the counters saved by :meth:`state_dict`."""
        missing = set(self.COUNTERS) - set(state)
        if missing:
            raise KeyError(
                f'NonFiniteGuard.load_state_dict: missing {sorted(missing)} '
                f'in the saved state (keys: {sorted(state)}).')
        for key in self.COUNTERS:
            setattr(self, key, int(state[key]))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(name={self.name!r}, '
                f'max_consecutive={self.max_consecutive}, '
                f'skipped={self.num_skipped}/{self.num_checked}, '
                f'consecutive={self.num_consecutive})')


def guard_counters(guards: Sequence[NonFiniteGuard]) -> Tensor:
    """The counters of ``guards``, a row each, as one int64 tensor.

    For a model's ``get_extra_state``: the counters then travel in the
    checkpoint's ``state_dict``, so a resumed run keeps counting where it
    stopped. One tensor, because mmengine broadcasts every ``state_dict``
    entry between processes.
    """
    return torch.tensor(
        [[guard.state_dict()[c] for c in NonFiniteGuard.COUNTERS]
         for guard in guards], dtype=torch.int64)


def load_guard_counters(guards: Sequence[NonFiniteGuard],
                        counters: Tensor) -> None:
    """Restore what :func:`guard_counters` saved."""
    for guard, row in zip(guards, counters.tolist()):
        guard.load_state_dict(dict(zip(NonFiniteGuard.COUNTERS, row)))
