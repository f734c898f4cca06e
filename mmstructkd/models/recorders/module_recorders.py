"""Recorders: capture intermediate tensors of a model with forward hooks.

A recorder watches one submodule (``source``, a dotted module path such as
``'decode_head.conv_seg'``). Hooks are registered once, when the recorder is
initialised on its model, but they only store data while recording is on
(inside the distiller's ``with recorders:`` block), so evaluation and the
teacher's own validation never fill the buffers.

Every call of the module during one recording appends one record, so a module
called several times per step (a shared head over FPN levels) is addressed by
``record_idx``; ``data_idx`` then indexes into the record (a tuple of FPN
levels, the positional inputs of the module, ...).
"""
import difflib
from typing import Any, List, Optional

from torch import nn

from mmstructkd.registry import TASK_UTILS


def closest_module_names(model: nn.Module, name: str, n: int = 5) -> List[str]:
    """The ``n`` submodule paths of ``model`` closest to ``name``."""
    names = [k for k, _ in model.named_modules() if k]
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.0)
    return close


class BaseModuleRecorder:
    """Record something about each call of the submodule at ``source``.

    Args:
        source: dotted path of the submodule in its model.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.data_buffer: List[Any] = []
        self.recording = False
        self._handle = None

    def initialize(self, model: nn.Module) -> None:
        """Find ``source`` in ``model`` and hook it (idempotent)."""
        if self._handle is not None:
            self._handle.remove()
        try:
            module = model.get_submodule(self.source)
        except AttributeError:
            close = closest_module_names(model, self.source)
            raise KeyError(
                f'{type(self).__name__}: no module named {self.source!r} in '
                f'{type(model).__name__}. Closest module names: {close}. Fix '
                f'the recorder\'s `source` in the distiller config.') from None
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: tuple, outputs: Any) -> None:
        if self.recording:
            self.data_buffer.append(self.select(inputs, outputs))

    def select(self, inputs: tuple, outputs: Any) -> Any:
        raise NotImplementedError

    def reset(self) -> None:
        self.data_buffer = []

    def get_record_data(self,
                        record_idx: int = 0,
                        data_idx: Optional[int] = None) -> Any:
        """Return record ``record_idx``, or element ``data_idx`` of it."""
        if not self.data_buffer:
            raise RuntimeError(
                f'{type(self).__name__} on {self.source!r} recorded nothing '
                f'in this step: the module was not called by the forward '
                f'that ran (for the teacher, set the algorithm\'s '
                f'teacher_forward_mode to "loss" if the module is only run '
                f'when losses are computed).')
        if not -len(self.data_buffer) <= record_idx < len(self.data_buffer):
            raise IndexError(
                f'{type(self).__name__} on {self.source!r}: record_idx='
                f'{record_idx} is out of range; the module was called '
                f'{len(self.data_buffer)} time(s) in this step.')
        record = self.data_buffer[record_idx]
        if data_idx is None:
            return record
        if not isinstance(record, (tuple, list)):
            raise IndexError(
                f'{type(self).__name__} on {self.source!r}: data_idx='
                f'{data_idx} given but the record is a single '
                f'{type(record).__name__}, not a tuple; remove data_idx.')
        if not -len(record) <= data_idx < len(record):
            raise IndexError(
                f'{type(self).__name__} on {self.source!r}: data_idx='
                f'{data_idx} is out of range; the record has {len(record)} '
                f'elements (valid: 0..{len(record) - 1}).')
        return record[data_idx]


@TASK_UTILS.register_module()
class ModuleOutputs(BaseModuleRecorder):
    """Record the output of ``source`` (a tensor or a tuple, e.g. FPN)."""

    def select(self, inputs: tuple, outputs: Any) -> Any:
        return outputs


@TASK_UTILS.register_module()
class ModuleInputs(BaseModuleRecorder):
    """Record the positional inputs of ``source`` as a tuple.

    Use ``data_idx=0`` for the first input (most modules take one).
    """

    def select(self, inputs: tuple, outputs: Any) -> Any:
        return inputs
