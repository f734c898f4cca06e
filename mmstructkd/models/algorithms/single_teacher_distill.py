"""``SingleTeacherDistill``: one frozen teacher distilled into a student."""
import os.path as osp
from typing import Dict, List, Optional, Union

import torch
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.structures import BaseDataElement
from torch import nn

from mmstructkd.registry import MODELS
from ..distillers.configurable_distiller import _build_in_scope
from ..losses.nonfinite_guard import NonFiniteGuard
from ..task_models import build_task_model, revert_sync_batchnorm_if_needed

TEACHER_FORWARD_MODES = ('auto', 'loss', 'tensor', 'feat')


def add_prefix(losses: Dict[str, torch.Tensor], prefix: str) -> Dict:
    return {f'{prefix}.{k}': v for k, v in losses.items()}


def all_ranks_agree(ok: bool) -> bool:
    """True only if ``ok`` on every process, so that all processes skip a
    non-finite step together (one skipping alone would hang DDP)."""
    from mmengine.dist import all_reduce, get_world_size
    if get_world_size() == 1:
        return ok
    flag = torch.tensor([0.0 if ok else 1.0])
    all_reduce(flag, op='sum')
    return flag.item() == 0


def average_gradients(module: nn.Module) -> None:
    """Average the gradients of ``module`` over all processes."""
    from mmengine.dist import all_reduce, get_world_size
    if get_world_size() == 1:
        return
    for param in module.parameters():
        if param.grad is not None:
            all_reduce(param.grad, op='mean')


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

        with student_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = run_forward(data, mode='loss')
        parsed, log_vars = self.parse_losses(losses)
        if all_ranks_agree(self.student_guard.check(losses, iteration)):
            student_wrapper.update_params(parsed)
        else:
            student_wrapper.zero_grad()
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
        with critic_wrapper.optim_context(self.discriminator):
            d_losses = self.discriminator_loss(
                discriminator=self.discriminator, **batch)
        parsed, log_vars = self.parse_losses(d_losses)
        if all_ranks_agree(self.discriminator_guard.check(d_losses,
                                                          iteration)):
            # update_params split open: the critic is outside DDP, so its
            # gradients are averaged over processes here.
            critic_wrapper.backward(parsed)
            average_gradients(self.discriminator)
            critic_wrapper.step()
            critic_wrapper.zero_grad()
        else:
            critic_wrapper.zero_grad()
        log_vars = {f'disc.{k}': v for k, v in log_vars.items()}
        log_vars['disc.nonfinite.skipped'] = torch.tensor(
            float(self.discriminator_guard.num_skipped))
        return log_vars

    # The guards' counters travel in the checkpoint's state_dict, so a
    # resumed run keeps counting where it stopped. One tensor, because
    # mmengine broadcasts every state_dict entry between processes.
    _GUARD_COUNTERS = ('num_checked', 'num_skipped', 'num_consecutive')

    def _guards(self):
        return (self.student_guard, self.discriminator_guard)

    def get_extra_state(self) -> torch.Tensor:
        return torch.tensor(
            [[getattr(g, c) for c in self._GUARD_COUNTERS]
             for g in self._guards()], dtype=torch.int64)

    def set_extra_state(self, state: torch.Tensor) -> None:
        for guard, counters in zip(self._guards(), state.tolist()):
            guard.load_state_dict(dict(zip(self._GUARD_COUNTERS, counters)))
