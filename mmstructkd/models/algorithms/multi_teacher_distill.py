"""``MultiTeacherDistill``: several frozen teachers distilled into one
student."""
import re
from typing import Dict, Optional, Union

from torch import nn

from mmstructkd.registry import MODELS
from .base_distill import BaseDistill

# The options of one teacher in ``teachers``: FrozenTeacher's arguments
# (SingleTeacherDistill's teacher_* options without the prefix). Every
# other key of the entry is its model config.
TEACHER_OPTIONS = ('ckpt', 'ckpt_strict', 'ckpt_allow_mismatch',
                   'forward_mode', 'precision')
# Names end up in metric keys (teacher.<name>.mIoU) and in --cfg-options
# paths (model.teachers.<name>.ckpt).
TEACHER_NAME = re.compile(r'[A-Za-z0-9_-]+')


def split_teachers(teachers: Dict[str, Union[dict, nn.Module]]
                   ) -> Dict[str, dict]:
    """``teachers`` (name -> model config with the teacher's options) as
    name -> ``FrozenTeacher`` arguments (``cfg`` and the options).

    Raises:
        ValueError: no teacher, or a name that is not made of letters,
            digits, ``_`` and ``-``.
        KeyError: an option written with SingleTeacherDistill's
            ``teacher_`` prefix.
    """
    if not isinstance(teachers, dict) or not teachers:
        raise ValueError(
            'MultiTeacherDistill needs teachers=dict(name=dict(cfg_path=..., '
            f'ckpt=...), ...) with at least one teacher, got {teachers!r}.')
    split = {}
    for name, entry in teachers.items():
        if not isinstance(name, str) or not TEACHER_NAME.fullmatch(name):
            raise ValueError(
                f'teachers: {name!r} is not a usable teacher name (letters, '
                f'digits, "_" and "-" only: it appears in metric keys and '
                f'--cfg-options paths).')
        if isinstance(entry, nn.Module):
            split[name] = dict(cfg=entry)
            continue
        cfg = dict(entry)
        prefixed = [k for k in cfg if k.startswith('teacher_') and
                    k[len('teacher_'):] in TEACHER_OPTIONS]
        if prefixed:
            raise KeyError(
                f'teachers[{name!r}]: write {[k[8:] for k in prefixed]}, not '
                f'{prefixed}: inside teachers the options have no teacher_ '
                f'prefix (allowed: {list(TEACHER_OPTIONS)}).')
        options = {k: cfg.pop(k) for k in TEACHER_OPTIONS if k in cfg}
        split[name] = dict(cfg=cfg, **options)
    return split


@MODELS.register_module()
class MultiTeacherDistill(BaseDistill):
    """Distil several frozen teachers into one student.

    Each teacher is built, loaded strictly and kept outside the module tree
    exactly as ``SingleTeacherDistill``'s one teacher (so state dicts,
    export, DDP and resume do not change), runs only as far as its own
    recorders need, in its own precision, and is evaluated and checked on
    its own (``SingleTeacherDistillValLoop``: ``teacher.<name>.*`` metrics;
    ``TeacherCheckHook``). The losses, each fed by its mapping, are summed
    with their weights, as with one teacher.

    Args:
        architecture: the student, as for ``SingleTeacherDistill``.
        teachers: teacher name -> its model config (``cfg_path=...`` or a
            model dict) plus its options: ``ckpt`` (its weights, loaded at
            build), ``ckpt_strict``, ``ckpt_allow_mismatch``,
            ``forward_mode`` and ``precision`` (``SingleTeacherDistill``'s
            ``teacher_*`` options), e.g. ``dict(psp=dict(cfg_path=...,
            ckpt='psp.pth'), fcn=dict(cfg_path=..., ckpt='fcn.pth',
            precision='bf16'))``.
        distiller: the distiller (``ConfigurableDistiller``) whose
            ``teacher_recorders`` are keyed by teacher name
            (``dict(psp=dict(logits=dict(type='ModuleOutputs', ...)))``)
            and whose teacher mappings name their teacher:
            ``dict(from_student=False, teacher='psp', recorder='logits')``.
        Other arguments: as for ``SingleTeacherDistill`` (a critic's
            ``discriminator_inputs['preds_T']`` names its teacher, from
            which the critic's ``num_classes`` is inferred; ``num_classes``
            is set in the student and every teacher).

    Example::

        model = dict(
            type='mmstructkd.MultiTeacherDistill',
            architecture=dict(cfg_path='mmstructkd::toy/pspnet_r18-...'),
            teachers=dict(
                psp=dict(cfg_path='mmstructkd::toy/pspnet_r34-...',
                         ckpt='psp.pth'),
                aspp=dict(cfg_path='mmstructkd::toy/deeplabv3_r34-...',
                          ckpt='aspp.pth')),
            distiller=dict(
                type='ConfigurableDistiller',
                student_recorders=dict(logits=dict(
                    type='ModuleOutputs', source='decode_head.conv_seg')),
                teacher_recorders=dict(
                    psp=dict(logits=dict(type='ModuleOutputs',
                                         source='decode_head.conv_seg')),
                    aspp=dict(logits=dict(type='ModuleOutputs',
                                          source='decode_head.conv_seg'))),
                distill_losses=dict(
                    loss_cwd_psp=dict(type='ChannelWiseDivergence'),
                    loss_cwd_aspp=dict(type='ChannelWiseDivergence')),
                loss_forward_mappings=dict(
                    loss_cwd_psp=dict(
                        preds_S=dict(from_student=True, recorder='logits'),
                        preds_T=dict(from_student=False, teacher='psp',
                                     recorder='logits')),
                    loss_cwd_aspp=dict(
                        preds_S=dict(from_student=True, recorder='logits'),
                        preds_T=dict(from_student=False, teacher='aspp',
                                     recorder='logits')))))
    """

    def __init__(self,
                 architecture: Union[dict, nn.Module],
                 teachers: Dict[str, Union[dict, nn.Module]],
                 distiller: dict,
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
            split_teachers(teachers),
            distiller,
            convert_sync_bn=convert_sync_bn,
            discriminator=discriminator,
            discriminator_loss=discriminator_loss,
            discriminator_inputs=discriminator_inputs,
            max_nonfinite_steps=max_nonfinite_steps,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg,
            mmrazor_args=mmrazor_args,
            num_classes=num_classes,
            algorithm='MultiTeacherDistill')

    @property
    def teacher_names(self):
        """The teachers' names, in config order."""
        return list(self._frozen_teachers)
