"""What every distillation algorithm here shares: the student, the frozen
teachers kept outside the module tree, the distiller, the adversarial critic
and the guarded training step.

``SingleTeacherDistill`` has one teacher (named None), ``MultiTeacherDistill``
one per name; everything below is written for any number of them.
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.structures import BaseDataElement
from torch import nn

from ..utils.build import build_in_scope
from ..utils.distributed import all_ranks_agree
from ..utils.label_check import check_student_labels
from ..utils.nonfinite_guard import (NonFiniteGuard, guard_counters,
                                     load_guard_counters)
from .adversarial_critic import (CriticInputs, build_critic,
                                 collect_critic_inputs, split_optim_wrapper,
                                 update_critic)
from .class_count import check_num_classes, set_num_classes
from .frozen_teacher import FrozenTeacher, check_teacher_precision
from .mmrazor_arguments import check_mmrazor_arguments
from .student_model import build_student, student_data_preprocessor

# The forward mode of the training step: the losses and the critic's inputs.
LOSS_AND_CRITIC_INPUTS = 'loss_and_critic_inputs'
DataSamples = Optional[List[BaseDataElement]]


def build_distiller(distiller: Union[dict, nn.Module],
                    teacher_names: Optional[List[str]]) -> nn.Module:
    """The distiller, told the teachers' names when there are several
    (``ConfigurableDistiller``'s ``teacher_names``)."""
    if teacher_names is None:
        return build_in_scope(distiller)
    if isinstance(distiller, nn.Module):
        given = getattr(distiller, 'teacher_names', None)
    else:
        distiller = dict(distiller)
        given = distiller.setdefault('teacher_names', list(teacher_names))
    if given is None or list(given) != list(teacher_names):
        raise ValueError(
            f'the distiller\'s teacher_names {given} are not the teachers '
            f'{list(teacher_names)}; leave teacher_names out of the '
            f'distiller config (the algorithm sets it).')
    return build_in_scope(distiller)


class BaseDistill(BaseModel):
    """A student trained against frozen teachers (the shared machinery).

    The student (``architecture``), a plain mmseg/mmdet model, serves the
    ``predict`` and ``tensor`` modes: evaluation uses its package's metrics.
    Each teacher is a :class:`FrozenTeacher`, held outside the module tree
    (see there); all of them move with the model (``.to``) and stay in
    ``eval()``.

    Args:
        architecture: the student: a model config dict, or
            ``dict(cfg_path=..., pretrained=..., cfg_options=...)``.
        teachers: teacher name (None for the only teacher) -> the keyword
            arguments of its :class:`FrozenTeacher` (``cfg``, ``ckpt``, ...).
        distiller: config of the distiller (``ConfigurableDistiller``).
        convert_sync_bn, discriminator, discriminator_loss,
        discriminator_inputs, max_nonfinite_steps, data_preprocessor,
        init_cfg, num_classes: see ``SingleTeacherDistill``.
        mmrazor_args: mmrazor's switches (see ``mmrazor_arguments``).
        algorithm: the algorithm's name, for messages.
    """

    def __init__(self,
                 architecture: Union[dict, nn.Module],
                 teachers: Dict[Optional[str], dict],
                 distiller: Union[dict, nn.Module],
                 convert_sync_bn: Union[str, bool] = 'auto',
                 discriminator: Optional[dict] = None,
                 discriminator_loss: Optional[dict] = dict(
                     type='DiscriminatorLoss'),
                 discriminator_inputs: Optional[dict] = None,
                 max_nonfinite_steps: Optional[int] = 10,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None,
                 mmrazor_args: Optional[dict] = None,
                 algorithm: str = 'SingleTeacherDistill',
                 num_classes: Optional[int] = None) -> None:
        # Cheap checks first: a typo fails before any model is built.
        for options in teachers.values():
            check_teacher_precision(options.get('precision', 'fp32'))
        # One class count for the student and every teacher (class_count).
        num_classes = check_num_classes(num_classes)
        architecture = set_num_classes(architecture, num_classes,
                                       'architecture')
        teachers = {
            name: dict(options, cfg=set_num_classes(
                options['cfg'], num_classes,
                'teacher' if name is None else f'teachers[{name!r}]'))
            for name, options in teachers.items()
        }
        student = build_student(architecture, convert_sync_bn)
        super().__init__(
            data_preprocessor=student_data_preprocessor(
                data_preprocessor, student), init_cfg=init_cfg)
        self.architecture = student
        # None: each model keeps its own config's class counts.
        self.num_classes = num_classes
        self.student_task_losses = check_mmrazor_arguments(
            mmrazor_args or {}, algorithm)

        # Plain objects, not modules: the teachers stay out of the tree.
        self._frozen_teachers: Dict[Optional[str], FrozenTeacher] = {
            name: FrozenTeacher(convert_sync_bn=convert_sync_bn, name=name,
                                student=student, **options)
            for name, options in teachers.items()
        }

        names = list(teachers)
        self.distiller = build_distiller(
            distiller, None if names == [None] else names)
        self.distiller.prepare_from_student(self.architecture)
        for name, frozen in self._frozen_teachers.items():
            self.distiller.prepare_from_teacher(frozen.model, name)
            frozen.resolve_forward_mode(
                self.distiller.teacher_recorders_of(name).sources)
        # Set by DistillLossWeightScheduleHook once distillation is over.
        self.skip_teacher_forward = False

        (self.discriminator, self.discriminator_loss,
         self.discriminator_inputs) = build_critic(
             self.distiller, discriminator, discriminator_loss,
             discriminator_inputs, self.teachers)
        self.student_guard, self.discriminator_guard = (
            NonFiniteGuard(max_nonfinite_steps, name=f'{part} step',
                           option='model.max_nonfinite_steps')
            for part in ('student', 'discriminator'))

    @property
    def frozen_teachers(self) -> Dict[Optional[str], FrozenTeacher]:
        """Teacher name (None for the only one) -> :class:`FrozenTeacher`."""
        return dict(self._frozen_teachers)

    @property
    def teachers(self) -> Dict[Optional[str], nn.Module]:
        """Teacher name (None for the only one) -> the teacher model."""
        return {name: frozen.model
                for name, frozen in self._frozen_teachers.items()}

    @property
    def student(self) -> nn.Module:
        return self.architecture

    def train(self, mode: bool = True) -> 'BaseDistill':
        super().train(mode)
        for frozen in self._frozen_teachers.values():
            frozen.model.eval()
        return self

    def _apply(self, fn, *args, **kwargs):
        # Move/cast the unregistered teachers along with the model.
        for frozen in self._frozen_teachers.values():
            frozen.model._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def forward(self, inputs: torch.Tensor, data_samples: DataSamples = None,
                mode: str = 'tensor'):
        """``'loss'``: :meth:`loss`; ``'loss_and_critic_inputs'``: the
        training step's; other modes go to the student."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == LOSS_AND_CRITIC_INPUTS:
            return self.loss_and_critic_inputs(inputs, data_samples)
        return self.architecture(inputs, data_samples, mode=mode)

    def run_teacher(self, inputs: torch.Tensor,
                    data_samples: DataSamples) -> None:
        """Run every teacher as far as its recorders need, without
        gradients, in its precision."""
        for name, frozen in self._frozen_teachers.items():
            frozen.run(self.distiller.teacher_recorders_of(name), inputs,
                       data_samples)

    def calculate_student_loss(self, inputs: torch.Tensor,
                               data_samples: DataSamples) -> Dict:
        """Record the student's loss forward; its task losses, if kept."""
        recorders = self.distiller.student_recorders
        with recorders:
            losses = self.architecture(inputs, data_samples, mode='loss')
        recorders.check_recorded()
        return losses if self.student_task_losses else {}

    def loss(self, inputs: torch.Tensor,
             data_samples: DataSamples = None) -> Dict:
        """``student.*`` task losses plus ``distill.*`` distillation losses."""
        return self.loss_and_critic_inputs(inputs, data_samples)[0]

    def loss_and_critic_inputs(
            self, inputs: torch.Tensor, data_samples: DataSamples = None
    ) -> Tuple[Dict, Optional[CriticInputs]]:
        """:meth:`loss`, and what the critic step trains on (None without a
        critic, or when the teachers did not run)."""
        check_student_labels(self.architecture, data_samples)
        distill = not self.skip_teacher_forward and \
            len(self.distiller.loss_forward_mappings) > 0
        if distill:
            self.run_teacher(inputs, data_samples)
        losses = {f'student.{k}': v for k, v in self.calculate_student_loss(
            inputs, data_samples).items()}
        critic_inputs = None
        if distill:
            # Only the losses that take them get the image and the critic.
            distill_losses = self.distiller.compute_distill_losses(
                image=inputs, discriminator=self.discriminator)
            losses.update({f'distill.{k}': v
                           for k, v in distill_losses.items()})
            if self.discriminator is not None:
                critic_inputs = collect_critic_inputs(
                    self.distiller, self.discriminator_inputs, inputs)
        self.distiller.reset_records()
        return losses, critic_inputs

    def train_step(self, data, optim_wrapper,
                   run_forward=None) -> Dict[str, torch.Tensor]:
        """Student step (task + distillation losses), then the critic step.

        ``optim_wrapper`` is the student's, or an ``OptimWrapperDict`` with
        ``architecture`` (and ``discriminator``); ``run_forward`` is DDP's
        forward when wrapped, so that the student's gradients are averaged.
        Each step is guarded (``NonFiniteGuard.update_or_skip``)."""
        run_forward = run_forward or self._run_forward
        student_wrapper, critic_wrapper = split_optim_wrapper(
            optim_wrapper, with_critic=self.discriminator is not None)
        iteration = MessageHub.get_current_instance().get_info('iter')

        self.student_guard.before_step(self)
        with student_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses, critic_inputs = run_forward(
                data, mode=LOSS_AND_CRITIC_INPUTS)
        parsed, log_vars = self.parse_losses(losses)
        self.student_guard.update_or_skip(
            self, losses, lambda: student_wrapper.update_params(parsed),
            student_wrapper.zero_grad, iteration, all_ranks_agree)
        log_vars['nonfinite.skipped'] = torch.tensor(
            float(self.student_guard.num_skipped))

        if critic_inputs is not None:
            log_vars.update(
                self.critic_step(critic_wrapper, critic_inputs, iteration))
        return log_vars

    def critic_step(self, critic_wrapper: OptimWrapper, inputs: CriticInputs,
                    iteration: Optional[int] = None) -> Dict:
        """One update of the critic (``adversarial_critic.update_critic``)."""
        return update_critic(self.discriminator, self.discriminator_loss,
                             inputs, critic_wrapper, self.discriminator_guard,
                             self.parse_losses, iteration)

    def get_extra_state(self) -> torch.Tensor:
        # The guards' counters, saved with the checkpoint for resume.
        return guard_counters([self.student_guard, self.discriminator_guard])

    def set_extra_state(self, state: torch.Tensor) -> None:
        load_guard_counters([self.student_guard, self.discriminator_guard],
                            state)
