"""A named group of recorders that is switched on as a context manager."""
from typing import Any, Dict, Optional

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
    """

    def __init__(self, recorders: Optional[Dict[str, dict]] = None,
                 owner: str = 'model') -> None:
        self.owner = owner
        self.recorders: Dict[str, BaseModuleRecorder] = {}
        for name, cfg in (recorders or {}).items():
            if isinstance(cfg, BaseModuleRecorder):
                self.recorders[name] = cfg
                continue
            cfg = dict(cfg)
            cfg.setdefault('_scope_', 'mmstructkd')
            self.recorders[name] = TASK_UTILS.build(cfg)

    def initialize(self, model: nn.Module) -> None:
        for name, recorder in self.recorders.items():
            try:
                recorder.initialize(model)
            except KeyError as e:
                raise KeyError(
                    f'{self.owner}_recorders[{name!r}]: {e.args[0]}') from None

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
            raise type(e)(f'{self.owner}_recorders[{name!r}]: {e}') from None

    def check_recorded(self) -> None:
        """Raise if a recorder stayed empty during the last recording."""
        for name, recorder in self.recorders.items():
            if not recorder.data_buffer:
                self.get_record_data(name)

    def __enter__(self) -> 'RecorderManager':
        for recorder in self.recorders.values():
            recorder.reset()
            recorder.recording = True
        return self

    def __exit__(self, *exc) -> None:
        for recorder in self.recorders.values():
            recorder.recording = False
