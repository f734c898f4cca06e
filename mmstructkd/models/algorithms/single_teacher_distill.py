"""``SingleTeacherDistill``: one frozen teacher distilled into a student."""
from typing import Optional, Sequence, Union

from torch import nn

from mmstructkd.registry import MODELS
from .base_distill import LOSS_AND_CRITIC_INPUTS, BaseDistill  # noqa: F401
from .frozen_teacher import FrozenTeacher, check_teacher_precision


def _teacher_option(key: str, doc: str) -> property:
    """``teacher_<key>`` of the algorithm: its ``FrozenTeacher``'s ``key``,
    read and set."""

    def get(self):
        return getattr(self._frozen_teacher, key)

    def set_(self, value):
        setattr(self._frozen_teacher, key, value)

    return property(get, set_, doc=doc)


@MODELS.register_module()
class SingleTeacherDistill(BaseDistill):
    """Distil a frozen teacher into a student (mmrazor's vocabulary).

    The student (``architecture``), a plain mmseg/mmdet model, serves the
    ``predict`` and ``tensor`` modes: evaluation uses its package's metrics.

    The teacher is held *outside* the module tree: in no optimizer, never
    wrapped by DDP, not in checkpoints (rebuilt from ``teacher_ckpt`` on
    every start, resume included). It moves with the model (``.to``) and
    stays in ``eval()`` with ``requires_grad=False``.

    Args:
        architecture, teacher: the student and the teacher: model config
            dicts, or ``dict(cfg_path='mmseg::...', pretrained=...,
            cfg_options=...)`` (``pretrained=True``: the config's model-zoo
            weights, loaded strictly; the teacher's ``teacher_ckpt`` wins).
        distiller: config of the distiller (``ConfigurableDistiller``).
        teacher_ckpt, teacher_ckpt_strict, teacher_ckpt_allow_mismatch: the
            teacher's weights (local path or URL), loaded at build, strictly
            unless ``teacher_ckpt_strict=False`` or under the key prefixes
            allowed to differ (see ``teacher_loading``); the outcome is kept
            in ``teacher_load_report``.
        teacher_forward_mode: how far the teacher runs: ``'feat'``,
            ``'tensor'``, ``'loss'`` or ``'auto'`` (see ``frozen_teacher``).
        teacher_precision: the precision of the teacher's forward:
            ``'fp32'`` (no autocast of its own), ``'bf16'`` or ``'fp16'``
            (CUDA only): under ``torch.autocast`` on the teacher's device,
            its records cast back to float32 for the losses (see
            ``frozen_teacher``).
        convert_sync_bn: replace SyncBN by BN in student and teacher:
            ``'auto'`` (unless distributed on CUDA), True or False.
        discriminator, discriminator_loss, discriminator_inputs: the
            adversarial critic of holistic distillation, its loss and where
            its inputs are recorded (see ``adversarial_critic``); with a
            critic, ``optim_wrapper`` needs keys ``architecture`` and
            ``discriminator`` (``SeparateOptimWrapperConstructor``).
        max_nonfinite_steps: NaN/Inf steps (skipped, logged as
            ``nonfinite.skipped``) in a row that stop training; None: never.
        data_preprocessor: defaults to the student's.
        num_classes: the class count of the data set, for the student and
            the teacher: every ``num_classes`` key of their model configs
            (``decode_head``, ``auxiliary_head``, ``bbox_head``,
            ``roi_head.bbox_head``, ``mask_head``, ...; not the
            class-agnostic ``rpn_head``) is set to it before they are built,
            and the critic's ``num_classes`` is inferred from the teacher
            (see ``class_count``). None: the configs' own counts.
        **mmrazor_args: mmrazor's switches (see ``mmrazor_arguments``).

    The training step, the critic and the modes are ``BaseDistill``'s; the
    teacher is its one ``FrozenTeacher`` (named None), whose options read
    and set as ``teacher_ckpt``, ``teacher_forward_mode``, ... here.
    """

    def __init__(self,
                 architecture: Union[dict, nn.Module],
                 teacher: Union[dict, nn.Module],
                 distiller: dict,
                 teacher_ckpt: Optional[str] = None,
                 teacher_ckpt_strict: bool = True,
                 teacher_ckpt_allow_mismatch: Sequence[str] = (),
                 teacher_forward_mode: str = 'auto',
                 teacher_precision: str = 'fp32',
                 convert_sync_bn: Union[str, bool] = 'auto',
                 discriminator: Optional[dict] = None,
                 discriminator_loss: Optional[dict] = dict(
                     type='DiscriminatorLoss'),
                 discriminator_inputs: Optional[dict] = None,
                 max_nonfinite_steps: Optional[int] = 10,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None,
                 num_classes: Optional[int] = None, **mmrazor_args) -> None:
        super().__init__(
            architecture,
            {None: dict(cfg=teacher, ckpt=teacher_ckpt,
                        ckpt_strict=teacher_ckpt_strict,
                        ckpt_allow_mismatch=teacher_ckpt_allow_mismatch,
                        forward_mode=teacher_forward_mode,
                        precision=teacher_precision)},
            distiller,
            convert_sync_bn=convert_sync_bn,
            discriminator=discriminator,
            discriminator_loss=discriminator_loss,
            discriminator_inputs=discriminator_inputs,
            max_nonfinite_steps=max_nonfinite_steps,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg,
            mmrazor_args=mmrazor_args,
            num_classes=num_classes)

    @property
    def _frozen_teacher(self) -> FrozenTeacher:
        return self._frozen_teachers[None]

    @property
    def teacher(self) -> nn.Module:
        return self._frozen_teacher.model

    teacher_ckpt = _teacher_option('ckpt', 'The teacher\'s checkpoint.')
    teacher_ckpt_strict = _teacher_option(
        'ckpt_strict', 'Whether the teacher is loaded strictly.')
    teacher_ckpt_allow_mismatch = _teacher_option(
        'ckpt_allow_mismatch', 'Key prefixes allowed to differ.')
    teacher_load_report = _teacher_option(
        'load_report', 'How the teacher checkpoint fitted (teacher_loading).')
    teacher_forward_mode = _teacher_option(
        'forward_mode', 'How far the teacher runs (resolved).')

    @property
    def teacher_precision(self) -> str:
        """The precision of the teacher's forward (``frozen_teacher``)."""
        return self._frozen_teacher.precision

    @teacher_precision.setter
    def teacher_precision(self, value: str) -> None:
        self._frozen_teacher.precision = check_teacher_precision(value)

    @property
    def _teacher_desc(self) -> str:
        return self._frozen_teacher.desc

    def load_teacher_checkpoint(self, path: str) -> None:
        """Load ``path`` into the teacher as ``teacher_ckpt_strict`` and
        ``teacher_ckpt_allow_mismatch`` say (see ``teacher_loading``) and
        keep the outcome as ``teacher_load_report``."""
        self._frozen_teacher.load_checkpoint(path, student=self.architecture)
