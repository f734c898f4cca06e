"""The adversarial critic of holistic distillation: its inputs and its step.

When ``SingleTeacherDistill`` has a ``discriminator``, every training step
is two optimizer steps: the student's (task and distillation losses, the
generator loss among them), then the critic's, trained by
``discriminator_loss`` to tell the teacher's predictions from the student's.
The critic's inputs are taken from the student step's recordings
(:func:`collect_critic_inputs`), detached, and handed to the critic step
explicitly (:class:`CriticInputs`).

Its class count (``discriminator.num_classes``, the channels of the
logits it scores) is inferred from the teacher when not given
(:func:`infer_critic_classes`), so the algorithm's ``num_classes`` is the
only class count of a distillation config.

The critic is kept outside DDP (``DistillDistributedDataParallel``), so its
step averages its gradients over processes itself; like the student step it
is guarded against NaN/Inf (``NonFiniteGuard``).
"""
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import torch
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor, nn

from ..utils.build import build_in_scope
from ..utils.distributed import all_ranks_agree, average_gradients
from ..utils.nonfinite_guard import NonFiniteGuard


class CriticInputs(NamedTuple):
    """What one critic step trains on (all detached from the student)."""
    preds_S: Tensor
    preds_T: Tensor
    image: Tensor


def build_critic(
        distiller, discriminator: Optional[dict],
        discriminator_loss: Optional[dict],
        discriminator_inputs: Optional[dict],
        teachers: Optional[Dict[Optional[str], nn.Module]] = None
) -> Tuple[Optional[nn.Module], Optional[nn.Module], Optional[dict]]:
    """The critic, its loss and its inputs' mappings
    (:func:`resolve_critic_inputs`); three None without a critic.

    A critic config without ``num_classes`` (and without ``in_channels``)
    gets the class count of the teacher that feeds it
    (:func:`infer_critic_classes`; ``teachers``: name -> built teacher).

    Raises:
        KeyError: a distillation loss takes ``discriminator=`` (the
            generator loss) and no critic is configured.
        ValueError: the critic's class count is neither given nor
            inferable.
    """
    if discriminator is None:
        needs_critic = distiller.losses_taking('discriminator')
        if needs_critic:
            raise KeyError(
                f'distill_losses {needs_critic} need an adversarial '
                f'critic: set model.discriminator (e.g. '
                f"dict(type='SAGANDiscriminator', num_classes=K)) and an "
                f'optimizer for it (optim_wrapper with keys '
                f"'architecture' and 'discriminator').")
        return None, None, None
    inputs = resolve_critic_inputs(distiller, discriminator_inputs)
    discriminator = infer_critic_classes(discriminator, teachers or {},
                                         inputs['preds_T'])
    return (build_in_scope(discriminator), build_in_scope(discriminator_loss),
            inputs)


def infer_critic_classes(discriminator, teachers: Dict[Optional[str],
                                                       nn.Module],
                         preds_T: dict):
    """``discriminator`` with ``num_classes`` set from the teacher when
    neither ``num_classes`` nor ``in_channels`` is given; as it is
    otherwise (explicit values are kept, a built critic is not touched).

    The count is that of the logits of the teacher named by ``preds_T``
    (the only one by default): its ``decode_head.num_classes`` after the
    algorithm's ``num_classes`` override, precisely the head's
    ``out_channels``, which differs only for a binary mmseg head with
    ``out_channels=1``.

    Raises:
        ValueError: the teacher has no ``decode_head`` with a class count.
    """
    if not isinstance(discriminator, dict) or \
            discriminator.get('num_classes') is not None or \
            discriminator.get('in_channels') is not None:
        return discriminator
    name = preds_T.get('teacher')
    teacher = teachers.get(name)
    head = getattr(teacher, 'decode_head', None)
    count = None
    for attr in ('out_channels', 'num_classes'):
        value = getattr(head, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            count = value
            break
    if count is None:
        which = 'the teacher' if name is None else f'teachers[{name!r}]'
        reason = 'there is no such teacher' if teacher is None else (
            f'its {type(teacher).__name__} has no decode_head with '
            f'num_classes (the count is inferred for the logits of an '
            f'mmseg segmentor)')
        raise ValueError(
            f'model.discriminator.num_classes is not set and cannot be '
            f'inferred from {which}, whose logits the critic scores: '
            f'{reason}. Set model.discriminator.num_classes (the channels '
            f"of the logits in discriminator_inputs['preds_T']).")
    return dict(discriminator, num_classes=count)


def resolve_critic_inputs(distiller,
                          discriminator_inputs: Optional[dict]) -> dict:
    """``discriminator_inputs`` checked against the distiller's recorders;
    by default both models' ``logits`` recorders (with several teachers,
    ``preds_T`` names one: ``dict(teacher='name', recorder='logits')``).

    Returns:
        ``dict(preds_S=<mapping>, preds_T=<mapping>)`` in the distiller's
        mapping form (``from_student``, ``teacher``, ``recorder``, ...).
    """
    if discriminator_inputs is None:
        discriminator_inputs = dict(
            preds_S=dict(from_student=True, recorder='logits'),
            preds_T=dict(from_student=False, recorder='logits'))
    for arg in ('preds_S', 'preds_T'):
        spec = discriminator_inputs.get(arg)
        where = f'discriminator_inputs[{arg!r}]'
        if spec is None or 'recorder' not in spec:
            raise KeyError(f'{where} must name a recorder '
                           f'(dict(recorder=...)), got {spec}.')
        spec.setdefault('from_student', arg == 'preds_S')
        distiller.recorders_for(spec, where)
    return discriminator_inputs


def collect_critic_inputs(distiller, discriminator_inputs: dict,
                          image: Tensor) -> CriticInputs:
    """The critic's inputs from the distiller's current recordings."""
    return CriticInputs(
        preds_S=distiller.get_record(
            discriminator_inputs['preds_S']).detach(),
        preds_T=distiller.get_record(
            discriminator_inputs['preds_T']).detach(),
        image=image.detach())


def split_optim_wrapper(
        optim_wrapper: OptimWrapper, with_critic: bool
) -> Tuple[OptimWrapper, Optional[OptimWrapper]]:
    """The student's and (``with_critic``) the critic's optim wrappers.

    Raises:
        KeyError: an ``OptimWrapperDict`` without ``architecture``, or a
            critic without its ``discriminator`` wrapper.
    """
    is_dict = isinstance(optim_wrapper, OptimWrapperDict)
    if is_dict and 'architecture' not in optim_wrapper:
        raise KeyError(
            'optim_wrapper has keys '
            f'{list(optim_wrapper.keys())}; the student\'s must be '
            "named 'architecture'.")
    if with_critic and not (is_dict and 'discriminator' in optim_wrapper):
        raise KeyError(
            'model.discriminator is set but optim_wrapper has no '
            "'discriminator' optimizer: use constructor="
            "'mmstructkd.SeparateOptimWrapperConstructor' with keys "
            "'architecture' and 'discriminator'.")
    student_wrapper = optim_wrapper['architecture'] if is_dict \
        else optim_wrapper
    critic_wrapper = optim_wrapper['discriminator'] if with_critic else None
    return student_wrapper, critic_wrapper


def update_critic(discriminator: nn.Module,
                  discriminator_loss: nn.Module,
                  inputs: CriticInputs,
                  critic_wrapper: OptimWrapper,
                  guard: NonFiniteGuard,
                  parse_losses: Callable,
                  iteration: Optional[int] = None) -> Dict[str, Tensor]:
    """One guarded update of the critic.

    Args:
        discriminator: the critic.
        discriminator_loss: its loss (``DiscriminatorLoss``).
        inputs: the student step's predictions and image.
        critic_wrapper: the critic's optim wrapper.
        guard: the critic's non-finite guard.
        parse_losses: ``BaseModel.parse_losses`` of the algorithm.
        iteration: the training iteration, for the guard's messages.

    Returns:
        The log variables, prefixed ``disc.``, with the guard's count of
        skipped steps as ``disc.nonfinite.skipped``.
    """
    guard.before_step(discriminator)
    with critic_wrapper.optim_context(discriminator):
        losses = discriminator_loss(
            discriminator=discriminator, **inputs._asdict())
    parsed, log_vars = parse_losses(losses)

    def update():
        # update_params split open: the critic is outside DDP, so its
        # gradients are averaged over processes here.
        critic_wrapper.backward(parsed)
        average_gradients(discriminator)
        critic_wrapper.step()
        critic_wrapper.zero_grad()

    guard.update_or_skip(discriminator, losses, update,
                         critic_wrapper.zero_grad, iteration, all_ranks_agree)
    log_vars = {f'disc.{k}': v for k, v in log_vars.items()}
    log_vars['disc.nonfinite.skipped'] = torch.tensor(
        float(guard.num_skipped))
    return log_vars
