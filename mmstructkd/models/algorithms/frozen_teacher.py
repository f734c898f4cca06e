"""The frozen teacher: building it, how far it runs each step, running it.

``teacher_forward_mode`` of ``SingleTeacherDistill``:

* ``'feat'``: ``extract_feat`` only (backbone and neck); every teacher
  recorder must be there (checked at build);
* ``'tensor'``: the task's ``_forward`` (backbone, neck and main head, no
  loss);
* ``'loss'``: the full loss forward, as mmrazor does; needed only for
  modules run solely by the loss, e.g. an mmseg auxiliary head;
* ``'auto'``: ``'feat'`` when every teacher recorder is in the backbone or
  neck, else ``'tensor'``.
"""
from typing import List, Optional, Sequence, Union

import torch
from mmengine.structures import BaseDataElement
from torch import nn

from ..task_models import build_task_model, revert_sync_batchnorm_if_needed

TEACHER_FORWARD_MODES = ('auto', 'loss', 'tensor', 'feat')
# Top-level parts of a model that extract_feat runs.
FEATURE_PARTS = ('backbone', 'neck')


def resolve_teacher_forward_mode(mode: str, teacher: nn.Module,
                                 recorder_sources: Sequence[str]) -> str:
    """``mode`` checked, with ``'auto'`` resolved for ``teacher`` whose
    recorders hook the modules ``recorder_sources``."""
    if mode not in TEACHER_FORWARD_MODES:
        raise ValueError(
            f'teacher_forward_mode must be one of {TEACHER_FORWARD_MODES}, '
            f'got {mode!r}.')
    outside = [s for s in recorder_sources
               if s.split('.')[0] not in FEATURE_PARTS]
    runs_feat = hasattr(teacher, 'extract_feat')
    if mode == 'feat' and (outside or not runs_feat):
        what = (f'the teacher recorders on {outside} are outside its '
                f'{" and ".join(FEATURE_PARTS)}' if outside else
                f'{type(teacher).__name__} has no extract_feat')
        raise ValueError(
            f"teacher_forward_mode='feat' (FpnTeacherDistill's only mode) "
            f'runs only the teacher\'s extract_feat (backbone and neck), '
            f'but {what}. Record backbone/neck modules of the teacher, or '
            f"use SingleTeacherDistill with teacher_forward_mode='auto' "
            f"(or 'tensor', 'loss').")
    if mode != 'auto':
        return mode
    if recorder_sources and not outside and runs_feat:
        return 'feat'
    return 'tensor'


def build_frozen_teacher(cfg: Union[dict, nn.Module],
                         convert_sync_bn: Union[str, bool]) -> nn.Module:
    """The teacher built from ``cfg`` (see ``build_task_model``), SyncBN
    replaced as ``convert_sync_bn`` says, in ``eval()`` mode and without
    gradients (its weights are loaded afterwards, by ``teacher_loading``)."""
    teacher = revert_sync_batchnorm_if_needed(
        build_task_model(cfg, 'teacher'), convert_sync_bn)
    teacher.eval()
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher


def run_teacher(teacher: nn.Module, recorders, mode: str,
                inputs: torch.Tensor,
                data_samples: Optional[List[BaseDataElement]]) -> None:
    """Run ``teacher`` as far as ``mode`` says, without gradients, inside
    its ``recorders``; raise if a recorder stayed empty."""
    with recorders, torch.no_grad():
        if mode == 'feat':
            teacher.extract_feat(inputs)
        else:
            teacher(inputs, data_samples, mode=mode)
    recorders.check_recorded()
