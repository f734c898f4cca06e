"""``SingleTeacherDistill``: one frozen teacher distilled into a student."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.structures import BaseDataElement
from torch import nn

from mmstructkd.registry import MODELS
from ..task_models import model_zoo_checkpoint
from ..utils.build import build_in_scope
from ..utils.distributed import all_ranks_agree
from ..utils.label_check import check_student_labels
from ..utils.nonfinite_guard import (NonFiniteGuard, guard_counters,
                                     load_guard_counters)
from .adversarial_critic import (CriticInputs, build_critic,
                                 collect_critic_inputs, split_optim_wrapper,
                                 update_critic)
from .frozen_teacher import (build_frozen_teacher,
                             resolve_teacher_forward_mode, run_teacher)
from .mmrazor_arguments import check_mmrazor_arguments
from .student_model import build_student, student_data_preprocessor
from .teacher_loading import (describe_model, empty_load_report,
                              load_teacher_checkpoint)

# The forward mode of the training step: the losses and the critic's inputs.
LOSS_AND_CRITIC_INPUTS = 'loss_and_critic_inputs'
DataSamples = Optional[List[BaseDataElement]]


@MODELS.register_module()
class SingleTeacherDistill(BaseModel):
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
        **mmrazor_args: mmrazor's switches (see ``mmrazor_arguments``).
    """

    def __init__(self,
                 architecture: Union[dict, nn.Module],
                 teacher: Union[dict, nn.Module],
                 distiller: dict,
                 teacher_ckpt: Optional[str] = None,
                 teacher_ckpt_strict: bool = True,
                 teacher_ckpt_allow_mismatch: Sequence[str] = (),
                 teacher_forward_mode: str = 'auto',
                 convert_sync_bn: Union[str, bool] = 'auto',
                 discriminator: Optional[dict] = None,
                 discriminator_loss: Optional[dict] = dict(
                     type='DiscriminatorLoss'),
                 discriminator_inputs: Optional[dict] = None,
                 max_nonfinite_steps: Optional[int] = 10,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None, **mmrazor_args) -> None:
        student = build_student(architecture, convert_sync_bn)
        super().__init__(
            data_preprocessor=student_data_preprocessor(
                data_preprocessor, student), init_cfg=init_cfg)
        self.architecture = student
        self.student_task_losses = check_mmrazor_arguments(mmrazor_args)

        # Stored outside _modules on purpose (see the class docstring).
        object.__setattr__(self, '_teacher',
                           build_frozen_teacher(teacher, convert_sync_bn))
        # Not the config: a built teacher in it would become a submodule.
        self._teacher_desc = describe_model(teacher)
        self.teacher_ckpt = teacher_ckpt if teacher_ckpt is not None \
            else model_zoo_checkpoint(teacher, 'teacher')
        self.teacher_ckpt_strict = teacher_ckpt_strict
        self.teacher_ckpt_allow_mismatch = tuple(teacher_ckpt_allow_mismatch)
        self.teacher_load_report = empty_load_report()
        if self.teacher_ckpt is not None:
            self.load_teacher_checkpoint(self.teacher_ckpt)

        self.distiller = build_in_scope(distiller)
        self.distiller.prepare_from_student(self.architecture)
        self.distiller.prepare_from_teacher(self.teacher)
        self.teacher_forward_mode = resolve_teacher_forward_mode(
            teacher_forward_mode, self.teacher,
            self.distiller.teacher_recorders.sources)
        # Set by DistillLossWeightScheduleHook once distillation is over.
        self.skip_teacher_forward = False

        (self.discriminator, self.discriminator_loss,
         self.discriminator_inputs) = build_critic(
             self.distiller, discriminator, discriminator_loss,
             discriminator_inputs)
        self.student_guard, self.discriminator_guard = (
            NonFiniteGuard(max_nonfinite_steps, name=f'{part} step',
                           option='model.max_nonfinite_steps')
            for part in ('student', 'discriminator'))

    @property
    def teacher(self) -> nn.Module:
        return self._teacher

    @property
    def student(self) -> nn.Module:
        return self.architecture

    def load_teacher_checkpoint(self, path: str) -> None:
        """Load ``path`` into the teacher as ``teacher_ckpt_strict`` and
        ``teacher_ckpt_allow_mismatch`` say (see ``teacher_loading``) and
        keep the outcome as ``teacher_load_report``."""
        self.teacher_load_report = load_teacher_checkpoint(
            self.teacher, path, strict=self.teacher_ckpt_strict,
            allow_mismatch=self.teacher_ckpt_allow_mismatch,
            teacher_cfg=self._teacher_desc, student=self.architecture)

    def train(self, mode: bool = True) -> 'SingleTeacherDistill':
        super().train(mode)
        self.teacher.eval()
        return self

    def _apply(self, fn, *args, **kwargs):
        # Move/cast the unregistered teacher along with the model.
        self.teacher._apply(fn, *args, **kwargs)
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
        """Run the teacher as far as its recorders need, without gradients."""
        run_teacher(self.teacher, self.distiller.teacher_recorders,
                    self.teacher_forward_mode, inputs, data_samples)

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
        critic, or when the teacher did not run)."""
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
