"""``SingleTeacherDistill``: one frozen teacher distilled into a student."""
import os.path as osp
from typing import Dict, List, Optional, Union

import torch
from mmengine.logging import MMLogger, print_log
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import nn

from mmstructkd.registry import MODELS
from ..distillers.configurable_distiller import _build_in_scope
from ..task_models import build_task_model, revert_sync_batchnorm_if_needed

TEACHER_FORWARD_MODES = ('auto', 'loss', 'tensor', 'feat')


def add_prefix(losses: Dict[str, torch.Tensor], prefix: str) -> Dict:
    return {f'{prefix}.{k}': v for k, v in losses.items()}


@MODELS.register_module()
class SingleTeacherDistill(BaseModel):
    """Distil a frozen teacher into a student (mmrazor's vocabulary).

    The student (``architecture``) is a plain mmseg/mmdet model and stays
    one: ``predict`` and ``tensor`` modes go to it, so validation and testing
    evaluate the student with the task package's own metrics, and
    ``tools/model_converters/export_student.py`` turns a checkpoint into a
    plain student checkpoint.

    The teacher is held *outside* the module tree: it is not a registered
    submodule, so its parameters are never in the optimizer, never wrapped
    by DDP (never all-reduced), and not in this model's checkpoints (it is
    rebuilt from ``teacher_ckpt`` on every start, resume included). It is
    moved with the model (``.to``/``.cuda``) and always stays in ``eval()``
    with ``requires_grad=False``.

    Args:
        architecture: the student: a model config dict, or
            ``dict(cfg_path='mmseg::...', pretrained=False, cfg_options=...)``.
        teacher: the teacher, in the same forms.
        distiller: config of the distiller (``ConfigurableDistiller``).
        teacher_ckpt: local path or URL of the teacher's weights, loaded at
            build time (a missing file fails before training starts).
        teacher_forward_mode: how far the teacher runs each step:
            ``'feat'`` (``extract_feat``: backbone and neck only),
            ``'tensor'`` (the task's ``_forward``: backbone, neck and main
            head, no loss), ``'loss'`` (full loss forward, as mmrazor does;
            needed only for modules run solely by the loss, e.g. an mmseg
            auxiliary head), or ``'auto'``: ``'feat'`` when every teacher
            recorder is in the backbone or neck, else ``'tensor'``.
        convert_sync_bn: replace SyncBN by BN in student and teacher:
            ``'auto'`` (unless distributed on CUDA), True or False.
        data_preprocessor: defaults to the student's.
    """

    def __init__(self,
                 architecture: Union[dict, nn.Module],
                 teacher: Union[dict, nn.Module],
                 distiller: dict,
                 teacher_ckpt: Optional[str] = None,
                 teacher_forward_mode: str = 'auto',
                 convert_sync_bn: Union[str, bool] = 'auto',
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        student = build_task_model(architecture, 'architecture')
        student = revert_sync_batchnorm_if_needed(student, convert_sync_bn)
        if data_preprocessor is None:
            data_preprocessor = student.data_preprocessor
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.architecture = student

        teacher_model = build_task_model(teacher, 'teacher')
        teacher_model = revert_sync_batchnorm_if_needed(
            teacher_model, convert_sync_bn)
        # Stored outside _modules on purpose (see the class docstring).
        object.__setattr__(self, '_teacher', teacher_model)
        self.teacher_ckpt = teacher_ckpt
        self.teacher_load_report: Dict[str, List[str]] = dict(
            missing_keys=[], unexpected_keys=[])
        if teacher_ckpt is not None:
            self.load_teacher_checkpoint(teacher_ckpt)
        self._freeze_teacher()

        self.distiller = _build_in_scope(distiller)
        self.distiller.prepare_from_student(self.architecture)
        self.distiller.prepare_from_teacher(self.teacher)

        if teacher_forward_mode not in TEACHER_FORWARD_MODES:
            raise ValueError(
                f'teacher_forward_mode must be one of '
                f'{TEACHER_FORWARD_MODES}, got {teacher_forward_mode!r}.')
        if teacher_forward_mode == 'auto':
            teacher_forward_mode = self._infer_teacher_forward_mode()
        self.teacher_forward_mode = teacher_forward_mode
        # Set by the loss-weight scheduler hook once distillation is over
        # and it is configured to stop running the teacher.
        self.skip_teacher_forward = False

    # ------------------------------------------------------------------
    # The teacher
    # ------------------------------------------------------------------
    @property
    def teacher(self) -> nn.Module:
        return self._teacher

    @property
    def student(self) -> nn.Module:
        return self.architecture

    def _freeze_teacher(self) -> None:
        self.teacher.eval()
        for param in self.teacher.parameters():
            param.requires_grad_(False)

    def load_teacher_checkpoint(self, path: str) -> None:
        """Load ``path`` into the teacher and remember missing/unexpected keys.

        Uses mmengine's loader (local files, URLs, ``open-mmlab://``), which
        unpickles weights-only (see ``mmstructkd.utils``).
        """
        from mmengine.runner.checkpoint import (CheckpointLoader,
                                                _load_checkpoint_to_model)
        is_remote = '://' in path
        if not is_remote and not osp.isfile(path):
            raise FileNotFoundError(
                f'teacher_ckpt {path!r} does not exist. The run has not '
                f'started: fix the path (or download the teacher checkpoint '
                f'there) and start again.')
        try:
            checkpoint = CheckpointLoader.load_checkpoint(
                path, map_location='cpu')
        except Exception as e:  # network errors come in many types
            raise RuntimeError(
                f'could not load teacher_ckpt {path!r}: {e}. The run has not '
                f'started; download the file and point teacher_ckpt at the '
                f'local copy.') from e
        state_dict = checkpoint.get('state_dict', checkpoint)
        model_keys = set(self.teacher.state_dict().keys())
        loaded_keys = {k[7:] if k.startswith('module.') else k
                       for k in state_dict}
        self.teacher_load_report = dict(
            missing_keys=sorted(model_keys - loaded_keys),
            unexpected_keys=sorted(loaded_keys - model_keys))
        _load_checkpoint_to_model(self.teacher, checkpoint, strict=False)
        missing = self.teacher_load_report['missing_keys']
        unexpected = self.teacher_load_report['unexpected_keys']
        if missing or unexpected:
            print_log(
                f'teacher_ckpt {path}: {len(missing)} missing keys '
                f'(e.g. {missing[:3]}) and {len(unexpected)} unexpected keys '
                f'(e.g. {unexpected[:3]}); is it the right checkpoint for '
                f'the teacher config?',
                logger='current', level=30)
        else:
            print_log(f'Loaded teacher checkpoint {path}', logger='current')

    def _infer_teacher_forward_mode(self) -> str:
        sources = self.distiller.teacher_recorders.sources
        feat_prefixes = ('backbone', 'neck')
        if sources and all(s.split('.')[0] in feat_prefixes
                           for s in sources) and \
                hasattr(self.teacher, 'extract_feat'):
            return 'feat'
        return 'tensor'

    def train(self, mode: bool = True) -> 'SingleTeacherDistill':
        super().train(mode)
        self.teacher.eval()
        return self

    def _apply(self, fn, *args, **kwargs):
        # Move/cast the unregistered teacher along with the model.
        self.teacher._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    # ------------------------------------------------------------------
    # Forward
    # ------------------------------------------------------------------
    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        return self.architecture(inputs, data_samples, mode=mode)

    def run_teacher(self, inputs: torch.Tensor,
                    data_samples: Optional[List[BaseDataElement]]) -> None:
        """Run the teacher as far as its recorders need, without gradients."""
        recorders = self.distiller.teacher_recorders
        with recorders, torch.no_grad():
            if self.teacher_forward_mode == 'feat':
                self.teacher.extract_feat(inputs)
            else:
                self.teacher(inputs, data_samples,
                             mode=self.teacher_forward_mode)
        recorders.check_recorded()

    def calculate_student_loss(
            self, inputs: torch.Tensor,
            data_samples: Optional[List[BaseDataElement]]) -> Dict:
        """The student's own task losses, recording its tensors meanwhile."""
        recorders = self.distiller.student_recorders
        with recorders:
            losses = self.architecture(inputs, data_samples, mode='loss')
        recorders.check_recorded()
        return losses

    def loss(self, inputs: torch.Tensor,
             data_samples: Optional[List[BaseDataElement]] = None) -> Dict:
        """Task losses of the student (``student.*``) plus distillation
        losses (``distill.*``)."""
        losses = {}
        distill = not self.skip_teacher_forward and \
            len(self.distiller.loss_forward_mappings) > 0
        if distill:
            self.run_teacher(inputs, data_samples)
        losses.update(
            add_prefix(self.calculate_student_loss(inputs, data_samples),
                       'student'))
        if distill:
            losses.update(
                add_prefix(self.distiller.compute_distill_losses(),
                           'distill'))
        self.distiller.reset_records()
        return losses
