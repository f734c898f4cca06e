"""Find NaN/Inf in many tensors at once, and undo a step's buffer updates.

Both serve the non-finite guard of the training step
(:class:`~mmstructkd.models.utils.NonFiniteGuard`) and the checkpoint checks
(``FiniteCheckpointHook``, ``find_resumable_checkpoint``).

:func:`nonfinite_tensors` checks every floating tensor of a list with one
fused reduction per (device, dtype) group (``torch._foreach_norm``: a norm is
NaN/Inf when an element is) and one host sync per device, instead of two
kernels and a sync per tensor.

:class:`BufferSnapshot` keeps a copy of a module's buffers. Buffers such as
BatchNorm's running statistics (and spectral norm's power-iteration vectors)
are updated by the *forward*, before the losses can be checked, so a step
whose losses turn out NaN has already written NaN into them. The copy is
taken before the step and put back when the step is skipped. Buffers are
small next to the parameters (BatchNorm: two vectors per layer), so this
costs one fused copy per step and little memory; parameters are not copied.

Example:
    >>> from torch import nn
    >>> bn = nn.BatchNorm1d(2)
    >>> snapshot = BufferSnapshot()
    >>> snapshot.take(bn)
    >>> _ = bn(torch.tensor([[float('nan'), 1.0], [0.0, 2.0]]))
    >>> nonfinite_tensors(bn.named_buffers())
    ['running_mean', 'running_var']
    >>> snapshot.restore(bn)
    >>> nonfinite_tensors(bn.named_buffers())
    []
"""
import itertools
from typing import Any, Dict, Iterable, Iterator, List, Tuple

import torch
from torch import Tensor, nn


LOW_PRECISION = (torch.float16, torch.bfloat16)


def _checkable(value: Any) -> bool:
    return (isinstance(value, Tensor) and value.layout == torch.strided
            and not value.is_meta and value.numel() > 0
            and (value.is_floating_point() or value.is_complex()))


@torch.no_grad()
def nonfinite_tensors(named_tensors: Iterable[Tuple[str, Any]]) -> List[str]:
    """Names of the floating tensors that hold a NaN or an infinity.

    Integer and boolean tensors (always finite), empty tensors and
    non-tensor values are ignored. Exact: a huge but finite value is not
    reported.

    Args:
        named_tensors: ``(name, tensor)`` pairs, e.g.
            ``module.named_parameters()``.

    Returns:
        The offending names, in the order given (empty if all finite).
    """
    # (device, dtype) -> [(name, tensor)]: _foreach_norm's fused path needs
    # one device and one dtype per call.
    groups: Dict[Tuple[torch.device, torch.dtype],
                 List[Tuple[str, Tensor]]] = {}
    order: Dict[str, int] = {}
    for position, (name, value) in enumerate(named_tensors):
        if _checkable(value):
            order.setdefault(name, position)
            groups.setdefault((value.device, value.dtype), []).append(
                (name, value.detach()))
    flags: Dict[torch.device, List[Tensor]] = {}
    entries: Dict[torch.device, List[Tuple[str, Tensor]]] = {}
    for (device, dtype), items in groups.items():
        # The L2 norm is NaN/Inf when an element is; it is the fastest of
        # the norms (a vectorised sum of squares), and a low-precision
        # tensor's norm is taken in float32 so that it does not overflow.
        out_dtype = torch.float32 if dtype in LOW_PRECISION else None
        norms = torch._foreach_norm([t for _, t in items], 2, dtype=out_dtype)
        flags.setdefault(device, []).append(
            torch.isfinite(torch.stack(norms)))
        entries.setdefault(device, []).extend(items)
    bad: List[str] = []
    for device, device_flags in flags.items():
        finite = torch.cat(device_flags).tolist()  # the one sync per device
        # A finite norm proves the tensor finite; a non-finite one may also
        # come from a sum of squares overflowing (elements above ~1e19), so
        # those few tensors are checked element by element.
        bad += [name for (name, tensor), ok in zip(entries[device], finite)
                if not ok and not bool(torch.isfinite(tensor).all())]
    return sorted(bad, key=order.__getitem__)


def named_state(module: nn.Module) -> Iterator[Tuple[str, Tensor]]:
    """The parameters, then the buffers, of ``module``, with their names."""
    return itertools.chain(module.named_parameters(), module.named_buffers())


class BufferSnapshot:
    """A copy of a module's buffers, to undo what a forward wrote in them.

    :meth:`take` copies every buffer (running statistics, counters) into
    tensors kept from one call to the next (allocated once, then refreshed by
    one fused copy); :meth:`restore` writes them back, by name.
    """

    def __init__(self) -> None:
        self._names: List[str] = []
        self._copies: List[Tensor] = []

    @torch.no_grad()
    def take(self, module: nn.Module) -> None:
        names, buffers = [], []
        for name, buffer in module.named_buffers():
            names.append(name)
            buffers.append(buffer)
        reuse = names == self._names and all(
            c.shape == b.shape and c.dtype == b.dtype and c.device == b.device
            for c, b in zip(self._copies, buffers))
        if reuse and buffers:
            torch._foreach_copy_(self._copies, buffers)
        elif not reuse:
            self._names = names
            self._copies = [b.detach().clone() for b in buffers]

    @torch.no_grad()
    def restore(self, module: nn.Module) -> None:
        if not self._names:
            return
        current = dict(module.named_buffers())
        for name, copy in zip(self._names, self._copies):
            buffer = current.get(name)
            if buffer is not None and buffer.shape == copy.shape:
                buffer.copy_(copy)

    def __len__(self) -> int:
        return len(self._copies)
