"""The distiller: recorders, connectors and losses wired by configuration.

It never runs a model and never computes a formula itself: the algorithm
runs teacher and student inside the recorders' contexts, then asks the
distiller to feed the recorded tensors to the losses as
``loss_forward_mappings`` says.
"""
import inspect
import numbers
from collections.abc import Mapping
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import nn

from mmstructkd.registry import MODELS
from ..recorders import BaseModuleRecorder, ModuleOutputs, RecorderManager
from ..utils.build import build_in_scope

# Keys a mapping entry may have besides the loss argument it fills
# (``teacher``: which one, with several teachers).
MAPPING_KEYS = {'from_student', 'teacher', 'recorder', 'record_idx',
                'data_idx', 'connector'}
# Keyword-only arguments the algorithm provides at each step (not recorded):
# the adversarial critic and the preprocessed image batch.
CONTEXT_ARGS = ('discriminator', 'image')


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_loss_weights(name: str, cfg: Any) -> None:
    """Fail at build on a loss weight that is not a number
    (``loss_weight='5'`` from a hand-edited config would only fail inside
    the first step, with a message that names neither the loss nor the
    option).

    ``loss_weight`` must be a number; the loss's other ``*_weight`` and
    ``*_weights`` options (each loss knows their types) must at least not be
    text. Checks a loss config, or the ``loss_weight`` of a built loss.
    """
    if isinstance(cfg, nn.Module):
        loss_type = type(cfg).__name__
        options = {k: getattr(cfg, k) for k in ('loss_weight', )
                   if hasattr(cfg, k)}
    else:
        loss_type = cfg.get('type')
        loss_type = getattr(loss_type, '__name__', loss_type)
        options = cfg
    where = f'distill_losses[{name!r}] ({loss_type})'
    for key, value in options.items():
        if not key.endswith(('_weight', '_weights')):
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        if key == 'loss_weight':
            bad = not _is_number(value)
        else:
            bad = any(isinstance(v, str) for v in values)
        if bad:
            hint = (f"; write {key}=5, not {key}='5'"
                    if any(isinstance(v, str) for v in values) else '')
            what = 'a number' if key == 'loss_weight' else 'numbers'
            raise TypeError(
                f'{where}: {key} must be {what}, got {value!r} '
                f'({type(value).__name__}){hint}.')


def _out_channels(module: nn.Module) -> Optional[int]:
    for attr in ('out_channels', 'out_features'):
        value = getattr(module, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def class_heads(model: nn.Module,
                recorders: RecorderManager) -> Dict[str, Tuple[str, int,
                                                             Optional[int]]]:
    """For each output recorder inside a head with ``num_classes`` (an
    mmseg decode head, an mmdet bbox head): ``(head path, num_classes,
    out channels of the recorded module or None)``."""
    heads = {}
    for name, recorder in recorders.recorders.items():
        if not isinstance(recorder, ModuleOutputs):
            continue
        parts = recorder.source.split('.')
        # The model itself is skipped: an mmseg segmentor also has
        # num_classes, which says nothing about its backbone's features.
        for end in range(len(parts), 0, -1):
            path = '.'.join(parts[:end])
            num_classes = getattr(model.get_submodule(path), 'num_classes',
                                  None)
            if isinstance(num_classes, int) and \
                    not isinstance(num_classes, bool):
                out = _out_channels(model.get_submodule(recorder.source))
                heads[name] = (path, num_classes, out)
                break
    return heads


def _per_class(channels: int, num_classes: int) -> Optional[Tuple[int, int]]:
    """``(k, extra)`` when ``channels == k * (num_classes + extra)``: one
    score per class (``extra=1``: plus background) for each of ``k``
    anchors."""
    for extra in (0, 1):
        if num_classes + extra > 0 and channels % (num_classes + extra) == 0:
            return channels // (num_classes + extra), extra
    return None


@MODELS.register_module()
class ConfigurableDistiller(BaseModule):
    """Feed recorded student/teacher tensors to distillation losses.

    Args:
        student_recorders: name -> recorder config on the student, e.g.
            ``dict(logits=dict(type='ModuleOutputs',
            source='decode_head.conv_seg'))``.
        teacher_recorders: likewise on the teacher; with several teachers
            (``teacher_names``), teacher name -> such a dict.
        distill_losses: name -> loss config; each loss's ``forward`` takes
            the arguments the mapping names.
        connectors: name -> connector config (trained with the student),
            applied to a recorded tensor when a mapping names it.
        loss_forward_mappings: loss name -> argument name -> where the value
            comes from: ``dict(from_student=True, recorder='logits',
            record_idx=0, data_idx=None, connector=None)``; with several
            teachers a teacher's entry names it:
            ``dict(from_student=False, teacher='name', recorder='logits')``.
        teacher_names: the teachers' names, set by ``MultiTeacherDistill``
            from its ``teachers``; None (one teacher): ``teacher_recorders``
            is one dict of recorders and mappings name no teacher.

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
                 init_cfg: Optional[dict] = None,
                 teacher_names: Optional[Sequence[str]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.student_recorders = RecorderManager(student_recorders, 'student')
        self.teacher_names = None if teacher_names is None else tuple(
            teacher_names)
        # teacher name (None: the only teacher) -> its recorders.
        self._teacher_groups = build_teacher_recorders(teacher_recorders,
                                                       self.teacher_names)
        # The single teacher's RecorderManager; with several teachers, name
        # -> RecorderManager (the shape of the config).
        self.teacher_recorders = self._teacher_groups[None] \
            if self.teacher_names is None else dict(self._teacher_groups)
        for name, cfg in (distill_losses or {}).items():
            check_loss_weights(name, cfg)
        self.distill_losses = nn.ModuleDict({
            name: build_in_scope(cfg)
            for name, cfg in (distill_losses or {}).items()
        })
        for name, loss in self.distill_losses.items():
            check_loss_weights(name, loss)
        self.connectors = nn.ModuleDict({
            name: build_in_scope(cfg)
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
        # recorder -> (head, num_classes, out channels) of the student and
        # of each teacher (by name), filled by prepare_from_student/teacher
        # to catch different class counts.
        self._class_heads_S: Optional[dict] = None
        self._class_heads_T: Dict[Optional[str], dict] = {}
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
                self.recorders_for(spec, f'{where}[{arg!r}]')
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

    def recorders_for(self, spec: Dict[str, Any],
                      where: str = 'mapping') -> RecorderManager:
        """The recorders a mapping entry ``spec`` reads from, checked: its
        teacher (by name, with several) and its recorder exist.

        Raises:
            KeyError: naming ``where``, with the teachers or recorders
                there are.
        """
        if spec['from_student']:
            if spec.get('teacher') is not None:
                raise KeyError(
                    f'{where}: teacher={spec["teacher"]!r} with '
                    f'from_student=True; a student entry names no teacher.')
            recorders = self.student_recorders
        else:
            name = spec.get('teacher')
            if self.teacher_names is None and name is not None:
                raise KeyError(
                    f'{where}: teacher={name!r}, but this distillation has '
                    f'one teacher (named teachers are MultiTeacherDistill\'s);'
                    f' remove teacher.')
            if name not in self._teacher_groups:
                what = (f'no teacher named {name!r}' if name is not None else
                        'a teacher entry needs teacher=<name> with several '
                        'teachers')
                raise KeyError(f'{where}: {what} (teachers: '
                               f'{list(self.teacher_names)}).')
            recorders = self._teacher_groups[name]
        if spec['recorder'] not in recorders:
            raise KeyError(
                f'{where}: no recorder {spec["recorder"]!r} in '
                f'{recorders.where} (available: '
                f'{sorted(recorders.recorders)}).')
        return recorders

    def teacher_recorders_of(self, name: Optional[str] = None
                             ) -> RecorderManager:
        """The recorders of teacher ``name`` (None: the only teacher)."""
        return self._teacher_groups[name]

    def prepare_from_student(self, student: nn.Module) -> None:
        self.student_recorders.initialize(student)
        self._class_heads_S = class_heads(student, self.student_recorders)
        self._check_class_counts()

    def prepare_from_teacher(self, teacher: nn.Module,
                             name: Optional[str] = None) -> None:
        """Hook the recorders of teacher ``name`` (None: the only teacher)
        on ``teacher``."""
        if name not in self._teacher_groups:
            raise KeyError(f'no teacher_recorders for teacher {name!r} '
                           f'(teachers: {self.teacher_names}).')
        recorders = self._teacher_groups[name]
        recorders.initialize(teacher)
        self._class_heads_T[name] = class_heads(teacher, recorders)
        self._check_class_counts()

    def _check_class_counts(self) -> None:
        """Fail at build when a loss compares class scores of a student
        and a teacher made for different numbers of classes."""
        if self._class_heads_S is None or not self._class_heads_T:
            return
        for loss_name, mapping in self.loss_forward_mappings.items():
            message = self._class_count_mismatch(loss_name, mapping)
            if message:
                raise ValueError(message)

    def _class_count_mismatch(self, loss_name: str, mapping: Dict[str, dict],
                              kwargs: Optional[Dict[str, Any]] = None
                              ) -> str:
        """The message when the student and teacher tensors of a loss are
        class scores whose channel counts differ only because the two
        configs have another ``num_classes``; '' otherwise.

        The channels are the recorded modules' (at build) or those of the
        recorded tensors in ``kwargs`` (at a step).
        """
        heads_S = self._class_heads_S or {}

        def channels(arg, out):
            if kwargs is None:
                return out
            value = kwargs.get(arg)
            if torch.is_tensor(value) and value.dim() >= 2:
                return value.shape[1]
            return None

        for arg_S, spec_S in mapping.items():
            if not spec_S['from_student'] or spec_S.get('connector') or \
                    spec_S['recorder'] not in heads_S:
                continue
            head_S, classes_S, out_S = heads_S[spec_S['recorder']]
            for arg_T, spec_T in mapping.items():
                if spec_T['from_student']:
                    continue
                heads_T = self._class_heads_T.get(spec_T.get('teacher'), {})
                if spec_T['recorder'] not in heads_T:
                    continue
                head_T, classes_T, out_T = heads_T[spec_T['recorder']]
                c_S, c_T = channels(arg_S, out_S), channels(arg_T, out_T)
                if classes_S == classes_T or c_S is None or c_T is None or \
                        c_S == c_T:
                    continue
                per_S, per_T = _per_class(c_S, classes_S), _per_class(
                    c_T, classes_T)
                if per_S is None or per_S != per_T:
                    continue
                source_S = self.student_recorders.recorders[
                    spec_S['recorder']].source
                source_T = self.recorders_for(spec_T).recorders[
                    spec_T['recorder']].source
                teacher = _owner(spec_T)
                return (
                    f'distill_losses[{loss_name!r}] compares the student\'s '
                    f'{source_S} ({c_S} channels) with {teacher}\'s '
                    f'{source_T} ({c_T} channels): num_classes differs '
                    f'between the teacher and student configs ({teacher} '
                    f'{head_T}.num_classes={classes_T}, student '
                    f'{head_S}.num_classes={classes_S}). Class scores can '
                    f'only be distilled between models of the same classes '
                    f'(a connector would only hide this): give both configs '
                    f'the same num_classes, with a teacher checkpoint '
                    f'trained on the student\'s classes.')
        return ''

    def get_record(self, spec: Dict[str, Any]) -> Any:
        recorders = self.student_recorders if spec['from_student'] \
            else self._teacher_groups[spec.get('teacher')]
        data = recorders.get_record_data(spec['recorder'],
                                         spec.get('record_idx', 0),
                                         spec.get('data_idx'))
        connector = spec.get('connector')
        if connector is not None:
            try:
                data = self.connectors[connector](data)
            except (ValueError, RuntimeError) as e:
                # Name the config entry and the tensor it was given: a
                # connector only knows its own type and arguments.
                raise type(e)(
                    f'connectors[{connector!r}] '
                    f'({type(self.connectors[connector]).__name__}) on '
                    f'{_describe_record(spec, data)}: {e}') from None
        return data

    def loss_arguments(self, loss_name: str, **context) -> Dict[str, Any]:
        """The keyword arguments of one loss's forward, as
        ``loss_forward_mappings[loss_name]`` says: the recorded tensors
        (connectors applied) plus the ``context`` values the loss takes.

        Args:
            loss_name: a key of ``distill_losses``.
            context: values the algorithm provides (``discriminator``,
                ``image``); only those the loss's forward takes are passed,
                and never over a mapped argument.

        Returns:
            dict: argument name -> value.
        """
        kwargs = {}
        for arg, spec in self.loss_forward_mappings[loss_name].items():
            try:
                kwargs[arg] = self.get_record(spec)
            except (IndexError, RuntimeError, ValueError) as e:
                raise type(e)(
                    f'loss_forward_mappings[{loss_name!r}][{arg!r}]: '
                    f'{e}') from None
        params = self._loss_params[loss_name]
        kwargs.update({k: v for k, v in context.items()
                       if k in params and k not in kwargs})
        return kwargs

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
            kwargs = self.loss_arguments(loss_name, **context)
            try:
                loss = self.distill_losses[loss_name](**kwargs)
            except ValueError as e:
                classes = self._class_count_mismatch(loss_name, mapping,
                                                     kwargs)
                if classes:
                    raise ValueError(classes) from None
                inputs = '; '.join(
                    f'{arg}: '
                    f'{_describe_record(spec, kwargs[arg], True)}'
                    for arg, spec in mapping.items())
                raise ValueError(f'distill_losses[{loss_name!r}]: {e}' +
                                 self._connector_hint(mapping, kwargs) +
                                 f' (inputs: {inputs})') from None
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
        for manager in [self.student_recorders,
                        *self._teacher_groups.values()]:
            for recorder in manager.recorders.values():
                recorder.reset()


def _shape_of(data: Any) -> str:
    """``(2, 16, 8, 8)`` for a tensor, ``[(...), (...)]`` for a tuple or
    list of them (FPN levels), the type's name otherwise."""
    if torch.is_tensor(data):
        return str(tuple(data.shape))
    if isinstance(data, (tuple, list)):
        return (f'{len(data)} levels ['
                + ', '.join(_shape_of(d) for d in data) + ']')
    return type(data).__name__


def _describe_record(spec: Dict[str, Any], data: Any,
                     after_connector: bool = False) -> str:
    """Where a mapped tensor comes from and its shape, for error messages:
    ``the student's recorder 'fpn' (data_idx 0) of shape (2, 16, 8, 8)``."""
    where = f"{_owner(spec)}'s recorder {spec['recorder']!r}"
    if spec.get('data_idx') is not None:
        where += f" (data_idx {spec['data_idx']})"
    if after_connector and spec.get('connector') is not None:
        where += f" after connectors[{spec['connector']!r}]"
    return f'{where} of shape {_shape_of(data)}'


def _owner(spec: Dict[str, Any]) -> str:
    """Whose tensor a mapping entry reads, for messages: ``the student``,
    ``the teacher``, or ``teachers['name']`` with several."""
    if spec['from_student']:
        return 'the student'
    name = spec.get('teacher')
    return 'the teacher' if name is None else f'teachers[{name!r}]'


def build_teacher_recorders(
        teacher_recorders: Optional[Dict[str, Any]],
        teacher_names: Optional[Tuple[str, ...]]
) -> Dict[Optional[str], RecorderManager]:
    """Teacher name -> its ``RecorderManager``; one teacher: ``{None: ...}``.

    Raises:
        KeyError: recorders keyed by teacher name for one teacher (or the
            other way round), a name that is not a teacher, a teacher
            without recorders (it would run for nothing).
    """
    teacher_recorders = dict(teacher_recorders or {})
    if teacher_names is None:
        per_teacher = [k for k, v in teacher_recorders.items()
                       if _is_recorder_group(v)]
        if per_teacher:
            raise KeyError(
                f'teacher_recorders{per_teacher} hold recorders by teacher '
                f'name: that is MultiTeacherDistill\'s form (model.teachers);'
                f' with one teacher, teacher_recorders maps recorder names '
                f'to recorder configs.')
        return {None: RecorderManager(teacher_recorders, 'teacher')}
    unknown = sorted(set(teacher_recorders) - set(teacher_names))
    if unknown:
        raise KeyError(
            f'teacher_recorders has entries {unknown} that are not teachers '
            f'(teachers: {list(teacher_names)}); with several teachers it '
            f'maps each teacher\'s name to its recorders.')
    for name in teacher_names:
        group = teacher_recorders.get(name)
        if group and not _is_recorder_group(group):
            raise KeyError(
                f'teacher_recorders[{name!r}] must map recorder names to '
                f'recorder configs, e.g. dict(logits=dict(type='
                f"'ModuleOutputs', source='decode_head.conv_seg')).")
    idle = [name for name in teacher_names if not teacher_recorders.get(name)]
    if idle:
        raise KeyError(
            f'teachers {idle} have no teacher_recorders: nothing would be '
            f'distilled from them, yet they would run every step. Add '
            f'teacher_recorders[name] (and mappings with teacher=name), or '
            f'remove them from model.teachers.')
    return {name: RecorderManager(teacher_recorders[name], 'teacher', name)
            for name in teacher_names}


def _is_recorder_config(value: Any) -> bool:
    return isinstance(value, BaseModuleRecorder) or (
        isinstance(value, Mapping) and 'type' in value)


def _is_recorder_group(value: Any) -> bool:
    """Whether a ``teacher_recorders`` value is a dict of recorder configs
    (one teacher's) rather than one recorder's config."""
    return isinstance(value, Mapping) and bool(value) and all(
        _is_recorder_config(v) for v in value.values())
