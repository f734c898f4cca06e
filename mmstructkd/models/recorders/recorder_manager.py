"""A named group of recorders that is switched on as a context manager."""
from typing import Any, Dict, Optional

import torch
from torch import nn

from mmstructkd.registry import TASK_UTILS
from .module_recorders import BaseModuleRecorder


class RecorderManager:
    """Build recorders from configs and record only inside ``with``.

    Args:
        recorders: mapping of recorder name to its config, e.g.
            ``dict(logits=dict(type='ModuleOutputs',
            source='decode_head.conv_seg'))``.
        owner: ``'student'`` or ``'teacher'``, used in error messages.
        group: the teacher's name when there are several
            (``MultiTeacherDistill``), used in error messages.
    """

    def __init__(self, recorders: Optional[Dict[str, dict]] = None,
                 owner: str = 'model', group: Optional[str] = None) -> None:
        self.owner = owner
        self.group = group
        self.recorders: Dict[str, BaseModuleRecorder] = {}
        for name, cfg in (recorders or {}).items():
            if isinstance(cfg, BaseModuleRecorder):
                self.recorders[name] = cfg
                continue
            cfg = dict(cfg)
            cfg.setdefault('_scope_', 'mmstructkd')
            self.recorders[name] = TASK_UTILS.build(cfg)

    @property
    def where(self) -> str:
        """The config entry of these recorders, for messages:
        ``teacher_recorders`` or ``teacher_recorders['name']``."""
        where = f'{self.owner}_recorders'
        return where if self.group is None else f'{where}[{self.group!r}]'

    def initialize(self, model: nn.Module) -> None:
        for name, recorder in self.recorders.items():
            try:
                recorder.initialize(model)
            except KeyError as e:
                raise KeyError(f'{self.where}[{name!r}]: {e.args[0]}') \
                    from None

    @property
    def sources(self):
        return [r.source for r in self.recorders.values()]

    def __contains__(self, name: str) -> bool:
        return name in self.recorders

    def __getitem__(self, name: str) -> BaseModuleRecorder:
        return self.recorders[name]

    def get_record_data(self, name: str, record_idx: int = 0,
                        data_idx: Optional[int] = None) -> Any:
        try:
            return self.recorders[name].get_record_data(record_idx, data_idx)
        except (IndexError, RuntimeError) as e:
            raise type(e)(f'{self.where}[{name!r}]: {e}') from None

    def check_recorded(self) -> None:
        """Raise if a recorder stayed empty during the last recording."""
        for name, recorder in self.recorders.items():
            if not recorder.data_buffer:
                self.get_record_data(name)

    def cast_records(self, dtype: torch.dtype) -> None:
        """Cast the floating-point tensors recorded so far to ``dtype``
        (e.g. a teacher run under autocast: its records back to float32);
        tuples, lists and dicts of tensors (FPN levels) are walked."""
        for recorder in self.recorders.values():
            recorder.data_buffer = [
                cast_floating(record, dtype)
                for record in recorder.data_buffer
            ]

    def __enter__(self) -> 'RecorderManager':
        for recorder in self.recorders.values():
            recorder.reset()
            recorder.recording = True
        return self

    def __exit__(self, *exc) -> None:
        for recorder in self.recorders.values():
            recorder.recording = False


def cast_floating(data: Any, dtype: torch.dtype) -> Any:
    """``data`` with every floating-point tensor in it cast to ``dtype``;
    integer tensors and other values as they are."""
    if torch.is_tensor(data):
        return data.to(dtype) if data.is_floating_point() else data
    if isinstance(data, (tuple, list)):
        cast = [cast_floating(d, dtype) for d in data]
        return type(data)(cast) if not hasattr(data, '_fields') \
            else type(data)(*cast)
    if isinstance(data, dict):
        return type(data)((k, cast_floating(v, dtype))
                          for k, v in data.items())
    return data
