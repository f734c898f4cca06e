"""Guard against non-finite loss values during training.

SKD's adversarial critic is known to blow up: its loss turns NaN/Inf after a
few thousand steps at small batch sizes (official repository issues #25, #28,
#56), and one NaN step poisons the weights for good. The training step asks
:class:`NonFiniteGuard` before each optimizer update: a step whose losses are
not all finite is skipped (the caller zeroes the gradients and does not call
``step``); a run of ``max_consecutive`` bad steps in a row stops training
with an error naming the terms, since skipping further would only hide a
diverged model. The counters are saved with the checkpoint
(``state_dict``/``load_state_dict``) so a resumed run keeps counting.

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
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
from torch import Tensor


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


class NonFiniteGuard:
    """Count and limit training steps whose losses are NaN or infinite.

    Call :meth:`check` once per optimizer step with that step's losses. It
    returns True when all are finite (go ahead) and False otherwise (skip
    the update); after ``max_consecutive`` bad steps in a row it raises a
    ``RuntimeError`` instead. A good step resets the run of bad ones.

    Args:
        max_consecutive: bad steps in a row that stop training (the
            ``max_consecutive``-th one raises); None never raises.
        name: what is guarded, used in messages (e.g. ``'discriminator'``).
        option: the config option that sets ``max_consecutive``, quoted in
            the error so the user knows what to change.

    Attributes:
        num_checked: steps checked so far.
        num_skipped: steps found non-finite (skipped) so far.
        num_consecutive: current run of non-finite steps.
        last_bad_terms: names of the non-finite terms of the last bad step.
    """

    def __init__(self,
                 max_consecutive: Optional[int] = 10,
                 name: str = 'loss',
                 option: str = 'max_consecutive') -> None:
        if max_consecutive is not None and max_consecutive < 1:
            raise ValueError(
                f'NonFiniteGuard: max_consecutive must be >= 1 or None, got '
                f'{max_consecutive}.')
        self.max_consecutive = max_consecutive
        self.name = name
        self.option = option
        self.num_checked = 0
        self.num_skipped = 0
        self.num_consecutive = 0
        self.last_bad_terms: List[str] = []

    def check(self, losses: Mapping[str, Any],
              step: Optional[int] = None) -> bool:
        """Record one step's losses; True if all of them are finite.

        Args:
            losses: mapping from term name to tensor/number (or lists).
            step: the training iteration, for the message (defaults to the
                guard's own count of checked steps).

        Returns:
            True when every term is finite, False when the step should be
            skipped.

        Raises:
            RuntimeError: on the ``max_consecutive``-th non-finite step in a
                row.
        """
        self.num_checked += 1
        bad = nonfinite_terms(losses)
        if not bad:
            self.num_consecutive = 0
            return True
        self.num_skipped += 1
        self.num_consecutive += 1
        self.last_bad_terms = bad
        if self.max_consecutive is not None and \
                self.num_consecutive >= self.max_consecutive:
            where = f'iteration {step}' if step is not None else \
                f'checked step {self.num_checked}'
            raise RuntimeError(
                f'NonFiniteGuard({self.name}): non-finite value in '
                f'{", ".join(bad)} for {self.num_consecutive} steps in a row '
                f'(at {where}; {self.num_skipped} of {self.num_checked} '
                f'checked steps skipped so far). Training has diverged. '
                f'Lower the learning rate or the loss weight, clip gradients, '
                f'or resume from an earlier checkpoint; to tolerate longer '
                f'runs of bad steps raise `{self.option}` (now '
                f'{self.max_consecutive}).')
        return False

    def state_dict(self) -> Dict[str, Any]:
        """Counters to save with the checkpoint (not the settings)."""
        return dict(
            num_checked=self.num_checked,
            num_skipped=self.num_skipped,
            num_consecutive=self.num_consecutive,
            last_bad_terms=list(self.last_bad_terms))

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the counters saved by :meth:`state_dict`."""
        missing = {'num_checked', 'num_skipped', 'num_consecutive'} - set(
            state)
        if missing:
            raise KeyError(
                f'NonFiniteGuard.load_state_dict: missing {sorted(missing)} '
                f'in the saved state (keys: {sorted(state)}).')
        self.num_checked = int(state['num_checked'])
        self.num_skipped = int(state['num_skipped'])
        self.num_consecutive = int(state['num_consecutive'])
        self.last_bad_terms = list(state.get('last_bad_terms', []))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(name={self.name!r}, '
                f'max_consecutive={self.max_consecutive}, '
                f'skipped={self.num_skipped}/{self.num_checked}, '
                f'consecutive={self.num_consecutive})')
