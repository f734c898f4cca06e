"""The distiller: recorders, connectors and losses wired by configuration.

It never runs a model and never computes a formula itself: the algorithm
runs teacher and student inside the recorders' contexts, then asks the
distiller to feed the recorded tensors to the losses as
``loss_forward_mappings`` says.
"""
import inspect
from typing import Any, Dict, Optional

import torch
from mmengine.model import BaseModule
from torch import nn

from mmstructkd.registry import MODELS
from ..recorders import RecorderManager

# Keys a mapping entry may have besides the loss argument it fills.
MAPPING_KEYS = {'from_student', 'recorder', 'record_idx', 'data_idx',
                'connector'}
# Keyword-only arguments the algorithm provides at each step (not recorded):
# the adversarial critic and the preprocessed image batch.
CONTEXT_ARGS = ('discriminator', 'image')


def _build_in_scope(cfg):
    if isinstance(cfg, nn.Module):
        return cfg
    cfg = dict(cfg)
    cfg.setdefault('_scope_', 'mmstructkd')
    return MODELS.build(cfg)


@MODELS.register_module()
class ConfigurableDistiller(BaseModule):
    """Feed recorded student/teacher tensors to distillation losses.

    Args:
        student_recorders: name -> recorder config on the student, e.g.
            ``dict(logits=dict(type='ModuleOutputs',
            source='decode_head.conv_seg'))``.
        teacher_recorders: likewise on the teacher.
        distill_losses: name -> loss config; each loss's ``forward`` takes
            the arguments the mapping names.
        connectors: name -> connector config (trained with the student),
            applied to a recorded tensor when a mapping names it.
        loss_forward_mappings: loss name -> argument name -> where the value
            comes from: ``dict(from_student=True, recorder='logits',
            record_idx=0, data_idx=None, connector=None)``.

    Example (channel-wise distillation of segmentation logits)::

        distiller=dict(
            type='ConfigurableDistiller',
            student_recorders=dict(logits=dict(
                type='ModuleOutputs', source='decode_head.conv_seg')),
            teacher_recorders=dict(logits=dict(
                type='ModuleOutputs', source='decode_head.conv_seg')),
            distill_losses=dict(loss_cwd=dict(
                type='ChannelWiseDivergence', tau=1, loss_weight=5)),
            loss_forward_mappings=dict(loss_cwd=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits'))))
    """

    def __init__(self,
                 student_recorders: Optional[Dict[str, dict]] = None,
                 teacher_recorders: Optional[Dict[str, dict]] = None,
                 distill_losses: Optional[Dict[str, dict]] = None,
                 connectors: Optional[Dict[str, dict]] = None,
                 loss_forward_mappings: Optional[Dict[str, dict]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.student_recorders = RecorderManager(student_recorders, 'student')
        self.teacher_recorders = RecorderManager(teacher_recorders, 'teacher')
        self.distill_losses = nn.ModuleDict({
            name: _build_in_scope(cfg)
            for name, cfg in (distill_losses or {}).items()
        })
        self.connectors = nn.ModuleDict({
            name: _build_in_scope(cfg)
            for name, cfg in (connectors or {}).items()
        })
        self.loss_forward_mappings = {
            name: {arg: dict(spec) for arg, spec in mapping.items()}
            for name, mapping in (loss_forward_mappings or {}).items()
        }
        # Argument names of each loss's forward, read once (not per step).
        self._loss_params = {
            name: set(inspect.signature(loss.forward).parameters)
            for name, loss in self.distill_losses.items()
        }
        # Multipliers on top of each loss's own loss_weight; the loss-weight
        # scheduler hook sets them (1.0 = as configured, 0.0 = off).
        self.loss_weight_multipliers: Dict[str, float] = {
            name: 1.0 for name in self.distill_losses
        }
        self._check_mappings()

    def _check_mappings(self) -> None:
        """Fail at build time on mappings that cannot work."""
        for loss_name in self.distill_losses:
            if loss_name not in self.loss_forward_mappings:
                raise KeyError(
                    f'distill_losses[{loss_name!r}] has no entry in '
                    f'loss_forward_mappings; add one saying which recorded '
                    f'tensors feed it.')
        for loss_name, mapping in self.loss_forward_mappings.items():
            where = f'loss_forward_mappings[{loss_name!r}]'
            if loss_name not in self.distill_losses:
                raise KeyError(
                    f'{where}: no loss named {loss_name!r} in distill_losses '
                    f'(available: {sorted(self.distill_losses)}).')
            loss = self.distill_losses[loss_name]
            params = inspect.signature(loss.forward).parameters
            takes_kwargs = any(p.kind == p.VAR_KEYWORD
                               for p in params.values())
            accepted = [n for n, p in params.items()
                        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            for arg, spec in mapping.items():
                if arg not in accepted and not takes_kwargs:
                    raise KeyError(
                        f'{where}: {type(loss).__name__}.forward takes no '
                        f'argument {arg!r}; it takes {accepted}.')
                unknown = set(spec) - MAPPING_KEYS
                if unknown:
                    raise KeyError(
                        f'{where}[{arg!r}]: unknown keys {sorted(unknown)}; '
                        f'allowed: {sorted(MAPPING_KEYS)}.')
                if 'from_student' not in spec or 'recorder' not in spec:
                    raise KeyError(
                        f'{where}[{arg!r}] needs from_student and recorder.')
                recorders = (self.student_recorders if spec['from_student']
                             else self.teacher_recorders)
                if spec['recorder'] not in recorders:
                    raise KeyError(
                        f'{where}[{arg!r}]: no recorder '
                        f'{spec["recorder"]!r} in {recorders.owner}_recorders '
                        f'(available: {sorted(recorders.recorders)}).')
                connector = spec.get('connector')
                if connector is not None and connector not in self.connectors:
                    raise KeyError(
                        f'{where}[{arg!r}]: no connector {connector!r} in '
                        f'connectors (available: {sorted(self.connectors)}).')
            missing = [
                n for n, p in params.items()
                if p.default is p.empty and n not in mapping and
                n not in CONTEXT_ARGS and
                p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            ]
            if missing:
                raise KeyError(
                    f'{where}: {type(loss).__name__}.forward needs '
                    f'{missing} too; map them to recorders.')

    def prepare_from_student(self, student: nn.Module) -> None:
        self.student_recorders.initialize(student)

    def prepare_from_teacher(self, teacher: nn.Module) -> None:
        self.teacher_recorders.initialize(teacher)

    def get_record(self, spec: Dict[str, Any]) -> Any:
        recorders = (self.student_recorders if spec['from_student']
                     else self.teacher_recorders)
        data = recorders.get_record_data(spec['recorder'],
                                         spec.get('record_idx', 0),
                                         spec.get('data_idx'))
        connector = spec.get('connector')
        if connector is not None:
            data = self.connectors[connector](data)
        return data

    def losses_taking(self, arg: str):
        """Names of the losses whose forward takes ``arg``."""
        return [name for name, params in self._loss_params.items()
                if arg in params]

    def compute_distill_losses(self, **context) -> Dict[str, torch.Tensor]:
        """Evaluate every distillation loss on the tensors just recorded.

        Args:
            context: values the algorithm provides (``discriminator``,
                ``image``), passed to the losses whose forward takes them.
        """
        losses = {}
        for loss_name, mapping in self.loss_forward_mappings.items():
            multiplier = self.loss_weight_multipliers.get(loss_name, 1.0)
            if multiplier == 0:
                continue
            kwargs = {}
            for arg, spec in mapping.items():
                try:
                    kwargs[arg] = self.get_record(spec)
                except (IndexError, RuntimeError) as e:
                    raise type(e)(
                        f'loss_forward_mappings[{loss_name!r}][{arg!r}]: '
                        f'{e}') from None
            params = self._loss_params[loss_name]
            kwargs.update({k: v for k, v in context.items()
                           if k in params and k not in kwargs})
            try:
                loss = self.distill_losses[loss_name](**kwargs)
            except ValueError as e:
                raise ValueError(f'distill_losses[{loss_name!r}]: {e}' +
                                 self._connector_hint(mapping, kwargs)
                                 ) from None
            losses[loss_name] = loss * multiplier if multiplier != 1 else loss
        return losses

    @staticmethod
    def _connector_hint(mapping: Dict[str, dict], kwargs: Dict[str,
                                                              Any]) -> str:
        """Suggest the connector that fixes a student/teacher channel gap."""
        student = [a for a, s in mapping.items() if s['from_student'] and
                   not s.get('connector') and torch.is_tensor(kwargs[a])]
        teacher = [a for a, s in mapping.items() if not s['from_student'] and
                   torch.is_tensor(kwargs[a])]
        if not student or not teacher:
            return ''
        s_arg, t_arg = student[0], teacher[0]
        s, t = kwargs[s_arg], kwargs[t_arg]
        if s.dim() < 2 or t.dim() < 2 or s.shape[1] == t.shape[1]:
            return ''
        return (f' To map the student\'s {s.shape[1]} channels to the '
                f'teacher\'s {t.shape[1]}, add connectors=dict(my_connector='
                f"dict(type='ConvModuleConnector', in_channel={s.shape[1]}, "
                f'out_channel={t.shape[1]})) to the distiller and '
                f"connector='my_connector' to the {s_arg!r} mapping.")

    def reset_records(self) -> None:
        """Drop recorded tensors so they do not outlive the step."""
        for manager in (self.student_recorders, self.teacher_recorders):
            for recorder in manager.recorders.values():
                recorder.reset()
