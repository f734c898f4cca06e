"""``SingleTeacherDistill``: one frozen teacher distilled into a student."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.structures import BaseDataElement
from torch import nn

from mmstructkd.registry import MODELS
from ..distillers.configurable_distiller import _build_in_scope
from ..utils.distributed import all_ranks_agree, average_gradients
from ..utils.nonfinite_guard import NonFiniteGuard
from ..task_models import (build_task_model, model_zoo_checkpoint,
                           revert_sync_batchnorm_if_needed)
from ..utils.label_check import check_student_labels
from .teacher_loading import (describe_model, load_pretrained_student,
                              load_teacher_checkpoint)

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
            ``pretrained=True`` loads the weights that the package's
            metafile lists for that config (the model zoo, as mmrazor does),
            strictly; a config without such weights is an error at build.
        teacher: the teacher, in the same forms. ``pretrained=True`` stands
            for ``teacher_ckpt=<the model-zoo weights of that config>`` and
            is not used when ``teacher_ckpt`` is given.
        distiller: config of the distiller (``ConfigurableDistiller``).
        teacher_ckpt: local path or URL of the teacher's weights, loaded at
            build time, strictly: a missing or unreadable file, keys missing
            from it, keys the teacher does not have and keys of another
            shape each fail before training starts, with the keys and both
            shapes in the message (BatchNorm's ``num_batches_tracked`` may
            be missing). ``state_dict`` nesting and a ``module.`` prefix are
            handled. The outcome is kept in ``teacher_load_report``.
        teacher_ckpt_strict: False loads what fits and logs a warning for
            the missing and unexpected keys (they stay in
            ``teacher_load_report``, where ``TeacherCheckHook`` finds them).
            Shapes that differ, and a checkpoint of which no key fits, stay
            errors.
        teacher_ckpt_allow_mismatch: key prefixes, e.g.
            ``('auxiliary_head.',)``, under which the checkpoint may differ
            from the teacher in any way (missing, extra or of another shape)
            even when strict; such keys are loaded when they fit and
            otherwise keep the teacher's initial weights. The narrow opt-out
            for a legitimate partial load.
        teacher_forward_mode: how far the teacher runs each step:
            ``'feat'`` (``extract_feat``: backbone and neck only),
            ``'tensor'`` (the task's ``_forward``: backbone, neck and main
            head, no loss), ``'loss'`` (full loss forward, as mmrazor does;
            needed only for modules run solely by the loss, e.g. an mmseg
            auxiliary head), or ``'auto'``: ``'feat'`` when every teacher
            recorder is in the backbone or neck, else ``'tensor'``.
        convert_sync_bn: replace SyncBN by BN in student and teacher:
            ``'auto'`` (unless distributed on CUDA), True or False.
        discriminator: config of the adversarial critic (holistic
            distillation, e.g. ``SAGANDiscriminator``). When given, every
            training step is followed by a critic step with its own
            optimizer: ``optim_wrapper`` must then be an ``OptimWrapperDict``
            with keys ``architecture`` and ``discriminator`` (see
            ``SeparateOptimWrapperConstructor``). Losses whose forward takes
            ``discriminator=`` (``AdversarialGeneratorLoss``) receive it.
        discriminator_loss: config of the critic's loss
            (``DiscriminatorLoss``: WGAN-GP or hinge).
        discriminator_inputs: where the critic's inputs come from, as
            distiller mappings: ``preds_S`` (detached for the critic step)
            and ``preds_T``.
        max_nonfinite_steps: a training (or critic) step whose losses are
            NaN/Inf is skipped and counted (logged as
            ``nonfinite.skipped``); this many in a row stop training with an
            error. None never stops.
        data_preprocessor: defaults to the student's.
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
                 init_cfg: Optional[dict] = None) -> None:
        student = build_task_model(architecture, 'architecture')
        student = revert_sync_batchnorm_if_needed(student, convert_sync_bn)
        load_pretrained_student(student, architecture)
        if data_preprocessor is None:
            data_preprocessor = student.data_preprocessor
        elif isinstance(data_preprocessor, dict):
            # e.g. merged by the Runner from a top-level `data_preprocessor`
            # of the config: a task-package type, built in its scope.
            data_preprocessor = build_task_model(data_preprocessor,
                                                 'data_preprocessor')
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.architecture = student

        teacher_model = build_task_model(teacher, 'teacher')
        teacher_model = revert_sync_batchnorm_if_needed(
            teacher_model, convert_sync_bn)
        # Stored outside _modules on purpose (see the class docstring).
        object.__setattr__(self, '_teacher', teacher_model)
        # A description, not the config: a built teacher module stored here
        # would become a registered submodule.
        self._teacher_desc = describe_model(teacher)
        if teacher_ckpt is None:
            teacher_ckpt = model_zoo_checkpoint(teacher, 'teacher')
        self.teacher_ckpt = teacher_ckpt
        self.teacher_ckpt_strict = teacher_ckpt_strict
        self.teacher_ckpt_allow_mismatch = tuple(teacher_ckpt_allow_mismatch)
        self.teacher_load_report: Dict[str, list] = dict(
            missing_keys=[], unexpected_keys=[], shape_mismatches=[],
            allowed_keys=[])
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

        self._build_adversarial(discriminator, discriminator_loss,
                                discriminator_inputs)
        self.student_guard = NonFiniteGuard(
            max_nonfinite_steps, name='student step',
            option='model.max_nonfinite_steps')
        self.discriminator_guard = NonFiniteGuard(
            max_nonfinite_steps, name='discriminator step',
            option='model.max_nonfinite_steps')

    def _build_adversarial(self, discriminator, discriminator_loss,
                           discriminator_inputs) -> None:
        needs_critic = self.distiller.losses_taking('discriminator')
        if discriminator is None:
            self.discriminator = None
            if needs_critic:
                raise KeyError(
                    f'distill_losses {needs_critic} need an adversarial '
                    f'critic: set model.discriminator (e.g. '
                    f"dict(type='SAGANDiscriminator', num_classes=K)) and an "
                    f'optimizer for it (optim_wrapper with keys '
                    f"'architecture' and 'discriminator').")
            return
        self.discriminator = _build_in_scope(discriminator)
        self.discriminator_loss = _build_in_scope(discriminator_loss)
        if discriminator_inputs is None:
            recorder = 'logits'
            discriminator_inputs = dict(
                preds_S=dict(from_student=True, recorder=recorder),
                preds_T=dict(from_student=False, recorder=recorder))
        for arg in ('preds_S', 'preds_T'):
            spec = discriminator_inputs.get(arg)
            recorders = self.distiller.student_recorders if arg == \
                'preds_S' else self.distiller.teacher_recorders
            if spec is None or spec.get('recorder') not in recorders:
                raise KeyError(
                    f'discriminator_inputs[{arg!r}] must name a recorder of '
                    f'{recorders.owner}_recorders (available: '
                    f'{sorted(recorders.recorders)}), got {spec}.')
            spec.setdefault('from_student', arg == 'preds_S')
        self.discriminator_inputs = discriminator_inputs
        self._critic_batch = None

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
        """Load ``path`` into the teacher as ``teacher_ckpt_strict`` and
        ``teacher_ckpt_allow_mismatch`` say (see ``teacher_loading``) and
        keep the outcome as ``teacher_load_report``."""
        self.teacher_load_report = load_teacher_checkpoint(
            self.teacher, path, strict=self.teacher_ckpt_strict,
            allow_mismatch=self.teacher_ckpt_allow_mismatch,
            teacher_cfg=self._teacher_desc, student=self.architecture)

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
        check_student_labels(self.architecture, data_samples)
        losses = {}
        distill = not self.skip_teacher_forward and \
            len(self.distiller.loss_forward_mappings) > 0
        if distill:
            self.run_teacher(inputs, data_samples)
        losses.update(
            add_prefix(self.calculate_student_loss(inputs, data_samples),
                       'student'))
        if distill:
            context = dict(image=inputs)
            if self.discriminator is not None:
                context['discriminator'] = self.discriminator
            losses.update(
                add_prefix(self.distiller.compute_distill_losses(**context),
                           'distill'))
            if self.discriminator is not None:
                # Kept for the critic step that follows the student step.
                self._critic_batch = dict(
                    preds_S=self.distiller.get_record(
                        self.discriminator_inputs['preds_S']).detach(),
                    preds_T=self.distiller.get_record(
                        self.discriminator_inputs['preds_T']).detach(),
                    image=inputs.detach())
        self.distiller.reset_records()
        return losses

    # ------------------------------------------------------------------
    # Training step: student step, then (holistic KD) the critic step
    # ------------------------------------------------------------------
    def train_step(self, data, optim_wrapper,
                   run_forward=None) -> Dict[str, torch.Tensor]:
        """Student step (task + distillation losses), then the critic step.

        Args:
            data: a batch from the dataloader.
            optim_wrapper: the student's wrapper, or an ``OptimWrapperDict``
                with ``architecture`` (and ``discriminator``) wrappers.
            run_forward: the forward to use for the student step; a DDP
                wrapper passes its own so gradients are synchronised.

        Each step (student, critic) is guarded (``NonFiniteGuard``): a step
        whose losses are NaN/Inf on any process is skipped on all of them,
        and the buffers its forward updated (BatchNorm running statistics,
        spectral-norm vectors) are put back, so it changes nothing; after an
        update, every parameter and buffer is checked (one fused check) and
        training stops with ``NonFiniteStateError`` if any is NaN/Inf. So
        no step leaves NaN/Inf behind in the weights or buffers: it returns
        with them finite (or unchanged) or raises.
        """
        run_forward = run_forward or self._run_forward
        if isinstance(optim_wrapper, OptimWrapperDict):
            if 'architecture' not in optim_wrapper:
                raise KeyError(
                    'optim_wrapper has keys '
                    f'{list(optim_wrapper.keys())}; the student\'s must be '
                    "named 'architecture'.")
            student_wrapper = optim_wrapper['architecture']
        else:
            student_wrapper = optim_wrapper
        if self.discriminator is not None and not (
                isinstance(optim_wrapper, OptimWrapperDict)
                and 'discriminator' in optim_wrapper):
            raise KeyError(
                'model.discriminator is set but optim_wrapper has no '
                "'discriminator' optimizer: use constructor="
                "'mmstructkd.SeparateOptimWrapperConstructor' with keys "
                "'architecture' and 'discriminator'.")
        iteration = MessageHub.get_current_instance().get_info('iter')

        self.student_guard.before_step(self)
        with student_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = run_forward(data, mode='loss')
        parsed, log_vars = self.parse_losses(losses)
        if self.student_guard.check(losses, iteration, all_ranks_agree):
            student_wrapper.update_params(parsed)
            self.student_guard.check_state(self, iteration, all_ranks_agree)
        else:
            student_wrapper.zero_grad()
            # The forward has already run the bad batch through BatchNorm.
            self.student_guard.rollback(self)
        log_vars['nonfinite.skipped'] = torch.tensor(
            float(self.student_guard.num_skipped))

        if self.discriminator is not None and self._critic_batch is not None:
            log_vars.update(self.critic_step(optim_wrapper['discriminator'],
                                             iteration))
        return log_vars

    def critic_step(self, critic_wrapper: OptimWrapper,
                    iteration=None) -> Dict[str, torch.Tensor]:
        """One update of the critic on the last student/teacher outputs."""
        batch, self._critic_batch = self._critic_batch, None
        self.discriminator_guard.before_step(self.discriminator)
        with critic_wrapper.optim_context(self.discriminator):
            d_losses = self.discriminator_loss(
                discriminator=self.discriminator, **batch)
        parsed, log_vars = self.parse_losses(d_losses)
        if self.discriminator_guard.check(d_losses, iteration,
                                          all_ranks_agree):
            # update_params split open: the critic is outside DDP, so its
            # gradients are averaged over processes here.
            critic_wrapper.backward(parsed)
            average_gradients(self.discriminator)
            critic_wrapper.step()
            critic_wrapper.zero_grad()
            self.discriminator_guard.check_state(self.discriminator,
                                                 iteration, all_ranks_agree)
        else:
            critic_wrapper.zero_grad()
            self.discriminator_guard.rollback(self.discriminator)
        log_vars = {f'disc.{k}': v for k, v in log_vars.items()}
        log_vars['disc.nonfinite.skipped'] = torch.tensor(
            float(self.discriminator_guard.num_skipped))
        return log_vars

    # The guards' counters travel in the checkpoint's state_dict, so a
    # resumed run keeps counting where it stopped. One tensor, because
    # mmengine broadcasts every state_dict entry between processes.
    _GUARD_COUNTERS = NonFiniteGuard.COUNTERS

    def _guards(self):
        return (self.student_guard, self.discriminator_guard)

    def get_extra_state(self) -> torch.Tensor:
        return torch.tensor(
            [[g.state_dict()[c] for c in self._GUARD_COUNTERS]
             for g in self._guards()], dtype=torch.int64)

    def set_extra_state(self, state: torch.Tensor) -> None:
        for guard, counters in zip(self._guards(), state.tolist()):
            guard.load_state_dict(dict(zip(self._GUARD_COUNTERS, counters)))
