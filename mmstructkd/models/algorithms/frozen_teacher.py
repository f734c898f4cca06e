"""The frozen teacher: building it, how far it runs each step, running it.

``FrozenTeacher`` holds one teacher with its checkpoint and options;
``SingleTeacherDistill`` has one, ``MultiTeacherDistill`` one per name.

``teacher_forward_mode`` of ``SingleTeacherDistill``:

* ``'feat'``: ``extract_feat`` only (backbone and neck); every teacher
  recorder must be there (checked at build);
* ``'tensor'``: the task's ``_forward`` (backbone, neck and main head, no
  loss);
* ``'loss'``: the full loss forward, as mmrazor does; needed only for
  modules run solely by the loss, e.g. an mmseg auxiliary head;
* ``'auto'``: ``'feat'`` when every teacher recorder is in the backbone or
  neck, else ``'tensor'``.

``teacher_precision``: the floating-point precision of that forward:

* ``'fp32'`` (the default): no autocast of its own: the teacher runs as the
  training step does (in float32, or under ``--amp``'s autocast like the
  student);
* ``'bf16'``, ``'fp16'``: under ``torch.autocast`` in that precision on the
  teacher's device type, whatever the step's own autocast; a cheaper
  forward for a large teacher. ``'fp16'`` is for CUDA (CPU autocast is
  meant for bfloat16). The recorded tensors are cast back to float32, so
  the losses compute in float32 as before; the teacher's weights are
  untouched (autocast casts copies per operation).
"""
import contextlib
from typing import List, Optional, Sequence, Union

import torch
from mmengine.structures import BaseDataElement
from torch import nn

from ..task_models import (build_task_model, model_zoo_checkpoint,
                           revert_sync_batchnorm_if_needed)
from .teacher_loading import (describe_model, empty_load_report,
                              load_teacher_checkpoint)

TEACHER_FORWARD_MODES = ('auto', 'loss', 'tensor', 'feat')
# teacher_precision -> the dtype of its autocast (None: no autocast).
TEACHER_PRECISIONS = dict(fp32=None, bf16=torch.bfloat16, fp16=torch.float16)
FP16_ADVICE = ("teacher_precision='fp16' is for CUDA teachers (fp16 autocast "
               "on a CPU is slow or unsupported); on a CPU use "
               "teacher_precision='bf16'.")
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


def check_teacher_precision(precision: str) -> str:
    """``precision`` checked when the model is built: one of
    ``TEACHER_PRECISIONS``, and ``'fp16'`` only where CUDA is available."""
    if precision not in TEACHER_PRECISIONS:
        raise ValueError(
            f'teacher_precision must be one of {tuple(TEACHER_PRECISIONS)}, '
            f'got {precision!r}.')
    if precision == 'fp16' and not torch.cuda.is_available():
        raise ValueError(f'{FP16_ADVICE} No CUDA device is available here.')
    return precision


def teacher_device_type(teacher: nn.Module) -> str:
    """``'cpu'``, ``'cuda'``, ...: where the teacher's weights are."""
    for tensor in teacher.parameters():
        return tensor.device.type
    for tensor in teacher.buffers():
        return tensor.device.type
    return 'cpu'


def teacher_autocast(teacher: nn.Module, precision: str):
    """The context the teacher's forward runs in for ``precision``: nothing
    of its own for ``'fp32'``, else ``torch.autocast`` on the teacher's
    device type."""
    dtype = TEACHER_PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    device_type = teacher_device_type(teacher)
    if precision == 'fp16' and device_type == 'cpu':
        raise ValueError(f'{FP16_ADVICE} This teacher is on the CPU.')
    return torch.autocast(device_type=device_type, dtype=dtype)


def forward_teacher(teacher: nn.Module, mode: str, inputs: torch.Tensor,
                    data_samples: Optional[List[BaseDataElement]]) -> None:
    """The teacher's forward as far as ``mode`` says (outputs dropped: the
    recorders keep what the losses need)."""
    if mode == 'feat':
        teacher.extract_feat(inputs)
    else:
        teacher(inputs, data_samples, mode=mode)


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
                data_samples: Optional[List[BaseDataElement]],
                precision: str = 'fp32') -> None:
    """Run ``teacher`` as far as ``mode`` says, without gradients, in
    ``precision``, inside its ``recorders``; raise if a recorder stayed
    empty. Below fp32 the records are cast back to float32."""
    with recorders, torch.no_grad(), teacher_autocast(teacher, precision):
        forward_teacher(teacher, mode, inputs, data_samples)
    recorders.check_recorded()
    if TEACHER_PRECISIONS[precision] is not None:
        recorders.cast_records(torch.float32)


class FrozenTeacher:
    """One frozen teacher: its model, checkpoint, and how it runs.

    The algorithm keeps it outside its module tree: the model is in no
    optimizer, never wrapped by DDP, not in checkpoints (rebuilt and
    reloaded from ``ckpt`` on every start, resume included); it stays in
    ``eval()`` with ``requires_grad=False``.

    Args:
        cfg: the teacher's model config (see ``build_task_model``) or a
            built model.
        convert_sync_bn: see ``SingleTeacherDistill``.
        ckpt: its weights (local path or URL), loaded now; None: the
            model-zoo weights of ``cfg`` with ``pretrained=True``, or none.
        ckpt_strict, ckpt_allow_mismatch: how strictly (see
            ``teacher_loading``).
        forward_mode: how far it runs (see the module docstring); ``'auto'``
            is resolved by :meth:`resolve_forward_mode` once its recorders
            are known.
        precision: ``'fp32'``, ``'bf16'`` or ``'fp16'`` (module docstring).
        name: its name among several teachers; None for the only one.
        student: the student, only to recognise its checkpoint in errors.
    """

    def __init__(self,
                 cfg: Union[dict, nn.Module],
                 convert_sync_bn: Union[str, bool] = 'auto',
                 ckpt: Optional[str] = None,
                 ckpt_strict: bool = True,
                 ckpt_allow_mismatch: Sequence[str] = (),
                 forward_mode: str = 'auto',
                 precision: str = 'fp32',
                 name: Optional[str] = None,
                 student: Optional[nn.Module] = None) -> None:
        self.name = name
        self.precision = check_teacher_precision(precision)
        self.model = build_frozen_teacher(cfg, convert_sync_bn)
        # Not the config: a built model in it would be kept alive twice.
        self.desc = describe_model(cfg)
        self.ckpt = ckpt if ckpt is not None else model_zoo_checkpoint(
            cfg, 'teacher')
        self.ckpt_strict = ckpt_strict
        self.ckpt_allow_mismatch = tuple(ckpt_allow_mismatch)
        self.forward_mode = forward_mode
        self.load_report = empty_load_report()
        if self.ckpt is not None:
            self.load_checkpoint(self.ckpt, student)

    def option(self, key: str) -> str:
        """The config option that sets ``key`` (``'ckpt'``, ...), for
        messages: ``teacher_ckpt``, or ``teachers['name'].ckpt``."""
        return f'teacher_{key}' if self.name is None else \
            f'teachers[{self.name!r}].{key}'

    @property
    def label(self) -> str:
        """``the teacher``, or ``teachers['name']``, for messages."""
        return 'the teacher' if self.name is None else \
            f'teachers[{self.name!r}]'

    def load_checkpoint(self, path: str,
                        student: Optional[nn.Module] = None) -> None:
        """Load ``path`` as ``ckpt_strict`` and ``ckpt_allow_mismatch`` say
        and keep the outcome as ``load_report``."""
        self.load_report = load_teacher_checkpoint(
            self.model, path, strict=self.ckpt_strict,
            allow_mismatch=self.ckpt_allow_mismatch, teacher_cfg=self.desc,
            student=student,
            options=tuple(self.option(k) for k in
                          ('ckpt', 'ckpt_strict', 'ckpt_allow_mismatch')))

    def resolve_forward_mode(self, recorder_sources: Sequence[str]) -> None:
        """Check ``forward_mode`` and resolve ``'auto'`` for recorders on
        the modules ``recorder_sources``."""
        self.forward_mode = resolve_teacher_forward_mode(
            self.forward_mode, self.model, recorder_sources)

    def run(self, recorders, inputs: torch.Tensor,
            data_samples: Optional[List[BaseDataElement]]) -> None:
        """One step's forward inside ``recorders`` (:func:`run_teacher`)."""
        run_teacher(self.model, recorders, self.forward_mode, inputs,
                    data_samples, self.precision)
