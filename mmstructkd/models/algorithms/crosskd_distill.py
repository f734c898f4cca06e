"""``CrossKDDistill``: cross-head distillation of dense detectors (CrossKD,
Wang et al., CVPR 2024).

Each training step:

1. the teacher runs ``extract_feat``, then its dense head from layer 0 on
   (:func:`head_from_layer`), without gradients: its predictions go to the
   teacher's :class:`HeadPredictions` recorder and its tower features at
   layer k are kept;
2. the student runs its loss forward; recorders on its head towers record
   its features at layer k, one record per FPN level;
3. still inside the student's recording, those features (through an
   optional connector, given the teacher's per-channel statistics at layer
   k, then a ReLU) run through the teacher's head from layer k on, with
   autograd on: these cross-head predictions go to the student's
   :class:`HeadPredictions` recorder. The teacher's parameters require no
   gradient, so only the student (and the connectors) learn from them;
4. the distiller feeds both recorders to the losses of the config
   (``KDQualityFocalLoss``, ``BoxGIoUDistillLoss``, ...).
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from mmstructkd.registry import MODELS
from ..recorders import ModuleOutputs
from ..recorders.head_predictions import HeadPredictions
from ..recorders.recorder_manager import cast_floating
from .frozen_teacher import TEACHER_PRECISIONS, teacher_autocast
from .head_from_layer import (check_layer, dense_head_layers, head_from_layer,
                              match_channel_statistics, width_at_layer)
from .single_teacher_distill import SingleTeacherDistill

CROSS_HEAD_KEYS = {'layer', 'head', 'student_feats', 'cross_preds',
                   'teacher_preds', 'connector', 'align_statistics'}


@MODELS.register_module()
class CrossKDDistill(SingleTeacherDistill):
    """Distil a dense detector through the teacher's head (CrossKD).

    All arguments but ``cross_head`` are ``SingleTeacherDistill``'s. The
    teacher runs its ``extract_feat`` and its head (by this algorithm), so
    ``teacher_forward_mode`` is ``'feat'``.

    Args:
        cross_head: where the student's features enter the teacher's head:

            * ``layer`` (int, required): k, the number of the student's
              tower convs whose output goes into the teacher's tower from
              its layer k on (0: the FPN levels; ``stacked_convs``: straight
              into the final convs).
            * ``head``: the dense head of both detectors (``'bbox_head'``).
            * ``student_feats``: names of the two student recorders of the
              features at layer k: ``ModuleOutputs`` on
              ``{head}.cls_convs.{k-1}`` and ``{head}.reg_convs.{k-1}``
              (for k = 0: both on ``'neck'``). Default
              ``('cls_feat', 'reg_feat')``.
            * ``cross_preds``: the student's ``HeadPredictions`` recorder
              that receives the cross-head predictions (``'cross_preds'``).
            * ``teacher_preds``: the teacher's ``HeadPredictions`` recorder
              of its own predictions (``'preds'``).
            * ``connector``: None, a connector name of the distiller, or a
              pair (classification tower, box tower): maps the student's
              width to the teacher's; needed when they differ.
            * ``align_statistics``: give the student's features the
              teacher's per-channel mean and std at layer k (default True,
              as CrossKD does).

        teacher_forward_mode: ``'feat'`` (or ``'auto'``, meaning it).
    """

    def __init__(self, *args, cross_head: dict,
                 teacher_forward_mode: str = 'feat', **kwargs) -> None:
        if teacher_forward_mode not in ('feat', 'auto'):
            raise ValueError(
                f"CrossKDDistill runs the teacher's extract_feat and then its "
                f"head itself (teacher_forward_mode='feat'), got "
                f'teacher_forward_mode={teacher_forward_mode!r}.')
        unknown = set(cross_head) - CROSS_HEAD_KEYS
        if unknown:
            raise KeyError(f'cross_head: unknown keys {sorted(unknown)}; '
                           f'allowed: {sorted(CROSS_HEAD_KEYS)}.')
        if 'layer' not in cross_head:
            raise KeyError('cross_head needs layer: how many of the '
                           "student's tower convs run before the teacher's.")
        # The teacher recorders include the head's HeadPredictions, which
        # 'auto' accepts; the teacher's head is run here, not by its forward.
        super().__init__(*args, teacher_forward_mode='auto', **kwargs)
        self.teacher_forward_mode = 'feat'
        self.cross_layer = cross_head['layer']
        self.cross_head_name = cross_head.get('head', 'bbox_head')
        self.student_feats = tuple(cross_head.get('student_feats',
                                                  ('cls_feat', 'reg_feat')))
        self.cross_preds = cross_head.get('cross_preds', 'cross_preds')
        self.teacher_preds = cross_head.get('teacher_preds', 'preds')
        self.align_statistics = cross_head.get('align_statistics', True)
        self.cross_connectors = self._connector_names(
            cross_head.get('connector'))
        self._check_cross_head()
        # The teacher's tower features at layer k, from run_teacher to the
        # cross-head pass of the same step.
        self._teacher_stage: Optional[Tuple[List[Tensor], List[Tensor]]] = \
            None

    # ------------------------------------------------------------------
    # Checks at build
    # ------------------------------------------------------------------
    @staticmethod
    def _connector_names(connector: Union[None, str, Sequence[str]]
                         ) -> Tuple[Optional[str], Optional[str]]:
        if connector is None or isinstance(connector, str):
            return connector, connector
        names = tuple(connector)
        if len(names) != 2:
            raise ValueError(
                f'cross_head.connector must be a connector name or a pair '
                f'(classification tower, box tower), got {connector!r}.')
        return names

    def _head_layers(self, model, owner: str):
        where = f"{owner}'s {self.cross_head_name}"
        try:
            head = model.get_submodule(self.cross_head_name)
        except AttributeError:
            raise KeyError(
                f'cross_head.head: the {owner} ({type(model).__name__}) has '
                f'no module {self.cross_head_name!r}.') from None
        layers = dense_head_layers(head, where)
        check_layer(layers, self.cross_layer, where)
        return layers

    def _check_cross_head(self) -> None:
        k, head = self.cross_layer, self.cross_head_name
        self._layers_S = self._head_layers(self.architecture, 'student')
        self._layers_T = self._head_layers(self.teacher, 'teacher')
        recorders_S = self.distiller.student_recorders
        recorders_T = self.distiller.teacher_recorders
        if len(self.student_feats) != 2:
            raise ValueError(
                f'cross_head.student_feats must name two student recorders '
                f'(classification tower, box tower), got '
                f'{self.student_feats!r}.')
        for name, tower in zip(self.student_feats, ('cls_convs',
                                                    'reg_convs')):
            expected = 'neck' if k == 0 else f'{head}.{tower}.{k - 1}'
            recorder = recorders_S.recorders.get(name)
            if not isinstance(recorder, ModuleOutputs) or \
                    recorder.source != expected:
                raise KeyError(
                    f'cross_head.layer={k} needs the student recorder '
                    f"{name!r} = dict(type='ModuleOutputs', "
                    f"source='{expected}') in student_recorders (the "
                    f'student\'s features after its {k} first {tower}), got '
                    f'{recorder.source if recorder else None!r}.')
        for recorders, name, key in (
                (recorders_S, self.cross_preds, 'cross_preds'),
                (recorders_T, self.teacher_preds, 'teacher_preds')):
            if not isinstance(recorders.recorders.get(name), HeadPredictions):
                raise KeyError(
                    f'cross_head.{key}: {recorders.owner}_recorders needs '
                    f"{name!r} = dict(type='HeadPredictions', "
                    f"source='{head}'), which CrossKDDistill fills.")
        for name in set(self.cross_connectors) - {None}:
            if name not in self.distiller.connectors:
                raise KeyError(
                    f'cross_head.connector: no connector {name!r} in the '
                    f'distiller (available: '
                    f'{sorted(self.distiller.connectors)}).')
        width_S = width_at_layer(self._layers_S, k)
        width_T = width_at_layer(self._layers_T, k)
        attr = 'in_channels' if k == 0 else 'feat_channels'
        if width_S != width_T and self.cross_connectors == (None, None):
            raise ValueError(
                f"CrossKD feeds the student's {head} features after tower "
                f"layer {k} into the teacher's {head} from layer {k} on, but "
                f'their widths differ: student {head}.{attr}={width_S}, '
                f'teacher {head}.{attr}={width_T}. Add connectors=dict('
                f"cross_cls=dict(type='ConvModuleConnector', "
                f'in_channel={width_S}, out_channel={width_T}, '
                f"norm_cfg=None), cross_reg=dict(type='ConvModuleConnector', "
                f'in_channel={width_S}, out_channel={width_T}, '
                f'norm_cfg=None)) to the distiller and '
                f"connector=('cross_cls', 'cross_reg') to cross_head.")
        for name in set(self.cross_connectors) - {None}:
            in_channel = getattr(self.distiller.connectors[name],
                                 'in_channel', width_S)
            if in_channel != width_S:
                raise ValueError(
                    f'connectors[{name!r}] takes {in_channel} channels but '
                    f'the student\'s {head}.{attr} is {width_S}.')

    # ------------------------------------------------------------------
    # The step
    # ------------------------------------------------------------------
    def run_teacher(self, inputs: torch.Tensor, data_samples) -> None:
        """The teacher's backbone, neck and head, without gradients and in
        ``teacher_precision``: its predictions recorded, its tower features
        at layer k kept."""
        recorders = self.distiller.teacher_recorders
        with recorders, torch.no_grad(), teacher_autocast(
                self.teacher, self.teacher_precision):
            feats = self.teacher.extract_feat(inputs)
            run = head_from_layer(self._layers_T, feats, feats, 0,
                                  keep=self.cross_layer)
            recorders[self.teacher_preds].put(run.cls_scores, run.bbox_preds)
        recorders.check_recorded()
        stage = (run.cls_feats, run.reg_feats)
        if TEACHER_PRECISIONS[self.teacher_precision] is not None:
            # Records and kept features back to float32, for the losses.
            recorders.cast_records(torch.float32)
            stage = cast_floating(stage, torch.float32)
        self._teacher_stage = stage

    def calculate_student_loss(self, inputs: torch.Tensor,
                               data_samples) -> Dict:
        """The student's loss forward, then (when the teacher ran this
        step) the cross-head pass, both inside the student's recorders."""
        recorders = self.distiller.student_recorders
        teacher_stage, self._teacher_stage = self._teacher_stage, None
        with recorders:
            losses = self.architecture(inputs, data_samples, mode='loss')
            if teacher_stage is not None:
                self.run_cross_head(*teacher_stage)
        for name, recorder in recorders.recorders.items():
            if not recorder.data_buffer and (teacher_stage is not None or
                                             name != self.cross_preds):
                recorders.get_record_data(name)  # raises, naming it
        return losses if self.student_task_losses else {}

    def _student_levels(self, name: str) -> List[Tensor]:
        """The student's recorded features of one tower, per FPN level."""
        records = self.distiller.student_recorders[name].data_buffer
        if len(records) == 1 and isinstance(records[0], (tuple, list)):
            return list(records[0])  # the neck: one record of all levels
        return list(records)  # a tower conv: one call per level

    def cross_head_inputs(self, feats_S: List[Tensor],
                          feats_T: List[Tensor],
                          connector: Optional[str]) -> List[Tensor]:
        """The student's features of one tower as the teacher's layer k
        takes them: connector, the teacher's statistics, ReLU."""
        if len(feats_S) != len(feats_T):
            raise ValueError(
                f'the student recorded {len(feats_S)} FPN levels of its '
                f'{self.cross_head_name} features but the teacher has '
                f'{len(feats_T)}.')
        inputs = []
        for s, t in zip(feats_S, feats_T):
            if connector is not None:
                s = self.distiller.connectors[connector](s)
            if self.align_statistics:
                s = match_channel_statistics(s, t)
            if self.cross_layer > 0:
                # The teacher's layer k was trained on a ReLU's output.
                s = F.relu(s)
            inputs.append(s)
        return inputs

    def run_cross_head(self, teacher_cls: List[Tensor],
                       teacher_reg: List[Tensor]) -> None:
        """The student's layer-k features through the teacher's head from
        layer k on (autograd on), into the ``cross_preds`` recorder."""
        cls_feats = self.cross_head_inputs(
            self._student_levels(self.student_feats[0]), teacher_cls,
            self.cross_connectors[0])
        reg_feats = self.cross_head_inputs(
            self._student_levels(self.student_feats[1]), teacher_reg,
            self.cross_connectors[1])
        run = head_from_layer(self._layers_T, cls_feats, reg_feats,
                              self.cross_layer)
        self.distiller.student_recorders[self.cross_preds].put(
            run.cls_scores, run.bbox_preds)
