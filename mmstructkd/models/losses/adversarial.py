"""Holistic (adversarial) distillation of SKD: WGAN-GP losses.

Structured knowledge distillation (Liu et al., CVPR 2019 / TPAMI 2020) trains
a critic D to score teacher segmentation maps T above student maps S, and the
student to raise its own score. With scores ``D(.)`` of shape (N,):

* student (generator) step, weight ``l_ho = 0.1``::

      L_ho = -mean_n D(S)_n

* critic step (one per student step, after it), ``l_gp = 10``::

      L_D  = mean_n D(S.detach())_n - mean_n D(T)_n + l_gp * GP
      GP   = mean_n (||grad_x D(x)_n||_2 - 1)^2,  x = a*T + (1-a)*S,
             a ~ U(0, 1) per sample

The hinge variant (SAGAN) replaces the critic's terms by
``mean relu(1 - D(T)) + mean relu(1 + D(S.detach()))``; its generator loss is
the same ``-mean D(S)``.

Who gets which gradient:

* :func:`adversarial_generator_loss` runs D through
  ``torch.func.functional_call`` with D's parameters *detached*: gradients
  flow through D into the student's logits, and D's parameters get none,
  without toggling ``requires_grad`` (no state to restore, nothing to get
  wrong when an exception interrupts the step, safe for a D shared with
  other code).
* :func:`discriminator_loss` detaches S and T itself, so the critic step
  never reaches the student or the teacher, whatever the caller passes.

All math runs in float32 with autocast off (``float32_math``): the penalty
differentiates twice and squares gradient norms, which half precision does
not survive.

Under DDP the critic is not wrapped: its parameters are excluded from the
student's DDP wrapper and the algorithm averages its gradients over the
processes itself after the critic step. A D passed in a
(Distributed)DataParallel wrapper is still accepted: the penalty's
interpolated call and the student-side call use the inner module.

One training iteration (D is not among the student's parameters and has its
own optimizer)::

    preds_S = student(image); preds_T = teacher(image)   # T under no_grad
    # 1. student step: task + distillation losses + adversarial term
    loss_S = task_loss + gen_loss(preds_S, discriminator=D)
    student_optim.update_params(loss_S)                  # D gets no grad
    # 2. critic step, after the student step, same recorded tensors
    d_losses = d_loss(preds_S, preds_T, discriminator=D)  # detaches S, T
    if guard.check(d_losses):
        d_optim.update_params(d_losses['d_total'])
"""
from typing import Callable, Dict, Optional

import torch
from torch import Tensor, nn
from torch.func import functional_call

from mmstructkd.registry import MODELS
from ..utils.model_wrappers import unwrap_model
from .utils import float32_math

LOSS_TYPES = ('wgan', 'hinge')
# Official default of l_gp; the official hinge variant adds no penalty.
DEFAULT_GP_WEIGHT = {'wgan': 10.0, 'hinge': 0.0}
# Critic outputs reported as they are (not multiplied by the loss weight).
UNWEIGHTED_KEYS = ('d_wasserstein', 'd_score_T', 'd_score_S')


def check_loss_type(who: str, loss_type: str) -> None:
    """Raise a ``ValueError`` naming ``who`` for an unknown ``loss_type``."""
    if loss_type not in LOSS_TYPES:
        raise ValueError(
            f'{who}: loss_type must be one of {LOSS_TYPES}, got '
            f'{loss_type!r}. (The official "wgan-gp" is loss_type="wgan" '
            f'with gp_weight=10.)')


def _call_discriminator(discriminator: Callable, seg_logits: Tensor,
                        image: Optional[Tensor]) -> Tensor:
    if image is None:
        return discriminator(seg_logits)
    return discriminator(seg_logits, image)


def frozen_discriminator_scores(discriminator: nn.Module,
                                seg_logits: Tensor,
                                image: Optional[Tensor] = None) -> Tensor:
    """Scores ``D(seg_logits)`` with gradients to the input only.

    D's parameters are swapped for detached aliases for the duration of the
    call (``torch.func.functional_call``): autograd differentiates through D
    to ``seg_logits`` but records no edge to D's parameters, so they receive
    no ``.grad`` from anything computed from these scores. Buffers are D's
    own (spectral norm still runs its power iteration in train mode, as in
    the official student step).

    Args:
        discriminator: the critic, possibly wrapped in (Distributed)
            DataParallel (the wrapper is bypassed: no reduction is wanted).
        seg_logits: (N, K, H, W) student logits.
        image: optional image batch forwarded to D.

    Returns:
        (N,) scores.
    """
    module = unwrap_model(discriminator)
    detached = {
        name: param.detach()
        for name, param in module.named_parameters()
    }
    args = (seg_logits, ) if image is None else (seg_logits, image)
    return functional_call(module, detached, args)


def generator_loss(scores_S: Tensor, loss_type: str = 'wgan') -> Tensor:
    """Student-side adversarial loss from the critic's scores.

    ``-mean_n D(S)_n`` for both ``'wgan'`` and ``'hinge'`` (the hinge GAN's
    generator loss is the same linear term; only the critic's loss differs).

    Args:
        scores_S: (N,) critic scores of the student maps.
        loss_type: ``'wgan'`` or ``'hinge'``.

    Returns:
        Scalar tensor.
    """
    check_loss_type('generator_loss', loss_type)
    return -scores_S.mean()


@float32_math
def adversarial_generator_loss(discriminator: nn.Module,
                               preds_S: Tensor,
                               image: Optional[Tensor] = None,
                               loss_type: str = 'wgan') -> Tensor:
    """``L_ho = -mean_n D(S)_n``, gradients to the student only.

    Args:
        discriminator: the critic (its parameters receive no gradient).
        preds_S: (N, K, H, W) student logits.
        image: image batch, for a critic in ``'softmax_image'`` mode.
        loss_type: ``'wgan'`` or ``'hinge'`` (same formula).

    Returns:
        Scalar tensor (unweighted).
    """
    scores = frozen_discriminator_scores(discriminator, preds_S, image)
    return generator_loss(scores, loss_type)


@float32_math
def gradient_penalty(discriminator: nn.Module,
                     real: Tensor,
                     fake: Tensor,
                     image: Optional[Tensor] = None,
                     generator: Optional[torch.Generator] = None) -> Tensor:
    """WGAN-GP penalty ``mean_n (||grad_x D(x)_n||_2 - 1)^2``.

    ``x = a * real + (1 - a) * fake`` with ``a ~ U(0, 1)`` drawn once per
    sample. ``real`` and ``fake`` are detached (the penalty trains D only);
    the graph of the gradient is kept (``create_graph=True``) so the penalty
    back-propagates into D's parameters.

    Where x lives: when D offers ``build_input``/``score_input`` (as
    :class:`SAGANDiscriminator` does), the interpolation is between the
    critic's *built inputs* and the gradient is taken w.r.t. them, so in
    ``'softmax_image'`` mode x mixes (softmax, image) maps as in the CVPR
    code; in ``'logits'`` mode this is the logits, as in the TPAMI code.
    Any other D is called as ``D(x)`` or ``D(x, image)`` on interpolated
    ``real``/``fake``.

    The per-sample gradient is read from ``grad_x sum_n D(x)_n``, exact when
    D scores each sample independently (not with batch norm in train mode).
    The norm's backward is zero, not NaN, where a gradient vanishes.

    Args:
        discriminator: the critic (a (Distributed)DataParallel wrapper is
            bypassed for the interpolated call).
        real: (N, ...) teacher maps T.
        fake: (N, ...) student maps S, same shape as ``real``.
        image: image batch for a critic in ``'softmax_image'`` mode.
        generator: optional ``torch.Generator`` (on ``real``'s device) for
            reproducible ``a``.

    Returns:
        Scalar tensor (unweighted GP).
    """
    if real.shape != fake.shape:
        raise ValueError(
            f'gradient_penalty: real (teacher) and fake (student) maps must '
            f'have the same shape, got {tuple(real.shape)} and '
            f'{tuple(fake.shape)}. Resize the student logits to the '
            f"teacher's size first.")
    real, fake = real.detach(), fake.detach()
    module = unwrap_model(discriminator)
    if hasattr(module, 'build_input') and hasattr(module, 'score_input'):
        real = module.build_input(real, image)
        fake = module.build_input(fake, image)

        def score(x: Tensor) -> Tensor:
            return module.score_input(x)
    else:

        def score(x: Tensor) -> Tensor:
            return _call_discriminator(discriminator, x, image)

    n = real.shape[0]
    alpha = torch.rand(
        n, generator=generator, device=real.device, dtype=real.dtype)
    alpha = alpha.view(n, *([1] * (real.dim() - 1)))
    # Even under no_grad the input gradient needs a graph.
    with torch.enable_grad():
        x = (alpha * real + (1 - alpha) * fake).detach().requires_grad_(True)
        scores = score(x)
        if scores.shape != (n, ):
            raise ValueError(
                f'gradient_penalty: the discriminator must return one score '
                f'per sample, shape ({n},), got {tuple(scores.shape)}.')
        (grad, ) = torch.autograd.grad(
            scores.sum(), x, create_graph=True)
        norms = torch.linalg.vector_norm(grad.flatten(1), dim=1)
        return ((norms - 1)**2).mean()


@float32_math
def discriminator_loss(discriminator: nn.Module,
                       preds_S: Tensor,
                       preds_T: Tensor,
                       image: Optional[Tensor] = None,
                       loss_type: str = 'wgan',
                       gp_weight: Optional[float] = None,
                       generator: Optional[torch.Generator] = None
                       ) -> Dict[str, Tensor]:
    """Loss terms of the critic step.

    ``'wgan'``::

        loss_d_real = -mean_n D(T)_n
        loss_d_fake =  mean_n D(S.detach())_n
        loss_gp     =  gp_weight * GP          (gp_weight default 10)

    ``'hinge'``::

        loss_d_real = mean_n relu(1 - D(T)_n)
        loss_d_fake = mean_n relu(1 + D(S.detach())_n)
        loss_gp     = gp_weight * GP           (gp_weight default 0)

    S and T are detached here, so neither network gets a gradient from the
    critic step. The ``loss_*`` entries sum to the critic loss (mmengine's
    ``parse_losses`` sums every key containing ``'loss'``); the other keys
    are for logging and do not contain ``'loss'``:

    * ``d_total``: the sum, with graph (call ``.backward()`` on it directly
      when not going through ``parse_losses``);
    * ``d_wasserstein``: ``mean D(T) - mean D(S)``, detached: the critic's
      estimate of the Wasserstein distance, the quantity to watch;
    * ``d_score_T``, ``d_score_S``: ``mean D(T)`` and ``mean D(S)``,
      detached, so the two scores can be followed over training (logged as
      ``disc.d_score_T`` / ``disc.d_score_S``).

    Args:
        discriminator: the critic, called as ``D(x)`` or ``D(x, image)``.
        preds_S: (N, K, H, W) student logits.
        preds_T: (N, K, H, W) teacher logits.
        image: image batch, for a critic in ``'softmax_image'`` mode.
        loss_type: ``'wgan'`` or ``'hinge'``.
        gp_weight: ``l_gp``; None picks 10 for ``'wgan'`` and 0 for
            ``'hinge'``. With 0 no penalty is computed (``loss_gp`` = 0).
        generator: optional ``torch.Generator`` for the penalty's ``a``.

    Returns:
        Dict with ``loss_d_real``, ``loss_d_fake``, ``loss_gp``, ``d_total``,
        ``d_wasserstein``, ``d_score_T``, ``d_score_S`` (scalars).
    """
    check_loss_type('discriminator_loss', loss_type)
    if preds_S.shape != preds_T.shape:
        raise ValueError(
            f'discriminator_loss: student and teacher logits must have the '
            f'same shape, got preds_S {tuple(preds_S.shape)} and preds_T '
            f"{tuple(preds_T.shape)}. Resize the student logits to the "
            f"teacher's size first.")
    if gp_weight is None:
        gp_weight = DEFAULT_GP_WEIGHT[loss_type]
    preds_S, preds_T = preds_S.detach(), preds_T.detach()
    scores_T = _call_discriminator(discriminator, preds_T, image)
    scores_S = _call_discriminator(discriminator, preds_S, image)
    if loss_type == 'wgan':
        loss_real = -scores_T.mean()
        loss_fake = scores_S.mean()
    else:
        loss_real = torch.relu(1 - scores_T).mean()
        loss_fake = torch.relu(1 + scores_S).mean()
    if gp_weight > 0:
        loss_gp = gp_weight * gradient_penalty(
            discriminator, preds_T, preds_S, image, generator=generator)
    else:
        loss_gp = scores_T.new_zeros(())
    return dict(
        loss_d_real=loss_real,
        loss_d_fake=loss_fake,
        loss_gp=loss_gp,
        d_total=loss_real + loss_fake + loss_gp,
        d_wasserstein=(scores_T.mean() - scores_S.mean()).detach(),
        d_score_T=scores_T.mean().detach(),
        d_score_S=scores_S.mean().detach())


@MODELS.register_module()
class AdversarialGeneratorLoss(nn.Module):
    """Student-side holistic loss ``loss_weight * -mean_n D(S)_n``.

    The critic is not owned by this loss (it has its own optimizer and must
    not end up among the student's parameters); the caller passes it at each
    call. D's parameters get no gradient from this term (see
    :func:`frozen_discriminator_scores`), so nothing needs freezing.

    Args:
        loss_type: ``'wgan'`` or ``'hinge'`` (same generator loss).
        loss_weight: ``l_ho`` (official 0.1).

    Example:
        >>> from mmstructkd.models.discriminators.sagan import \\
        ...     SAGANDiscriminator
        >>> D = SAGANDiscriminator(num_classes=19)
        >>> loss = AdversarialGeneratorLoss()
        >>> loss(torch.randn(2, 19, 65, 65), discriminator=D).shape
        torch.Size([])
    """

    def __init__(self, loss_type: str = 'wgan',
                 loss_weight: float = 0.1) -> None:
        super().__init__()
        check_loss_type(type(self).__name__, loss_type)
        self.loss_type = loss_type
        self.loss_weight = loss_weight

    def forward(self,
                preds_S: Tensor,
                *,
                discriminator: nn.Module,
                image: Optional[Tensor] = None) -> Tensor:
        """Compute the weighted loss.

        Args:
            preds_S: (N, K, H, W) student logits (not detached).
            discriminator: the critic.
            image: image batch, for a critic in ``'softmax_image'`` mode.

        Returns:
            Scalar tensor, already multiplied by ``loss_weight``.
        """
        return self.loss_weight * adversarial_generator_loss(
            discriminator, preds_S, image, loss_type=self.loss_type)


@MODELS.register_module()
class DiscriminatorLoss(nn.Module):
    """Critic-step loss of SKD's holistic distillation (see
    :func:`discriminator_loss`), every term times ``loss_weight``.

    Args:
        loss_type: ``'wgan'`` or ``'hinge'``.
        gp_weight: ``l_gp``; None: 10 for ``'wgan'``, 0 for ``'hinge'``.
        loss_weight: scales every term. The official code multiplies the
            critic loss by ``l_ho = 0.1`` too (with SGD, equivalent to a 10x
            smaller critic learning rate); 1.0 here follows the formula.
    """

    def __init__(self,
                 loss_type: str = 'wgan',
                 gp_weight: Optional[float] = None,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        check_loss_type(type(self).__name__, loss_type)
        if gp_weight is not None and gp_weight < 0:
            raise ValueError(
                f'DiscriminatorLoss: gp_weight must be >= 0, got '
                f'{gp_weight}.')
        self.loss_type = loss_type
        self.gp_weight = gp_weight
        self.loss_weight = loss_weight

    def forward(self,
                preds_S: Tensor,
                preds_T: Tensor,
                *,
                discriminator: nn.Module,
                image: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None
                ) -> Dict[str, Tensor]:
        """Compute the critic's loss terms.

        Args:
            preds_S: (N, K, H, W) student logits (detached here).
            preds_T: (N, K, H, W) teacher logits (detached here).
            discriminator: the critic.
            image: image batch, for a critic in ``'softmax_image'`` mode.
            generator: optional ``torch.Generator`` for the penalty.

        Returns:
            Dict of ``loss_d_real``, ``loss_d_fake``, ``loss_gp`` and
            ``d_total`` (weighted) and ``d_wasserstein``, ``d_score_T``,
            ``d_score_S`` (unweighted: the critic's own scores).
        """
        losses = discriminator_loss(
            discriminator,
            preds_S,
            preds_T,
            image,
            loss_type=self.loss_type,
            gp_weight=self.gp_weight,
            generator=generator)
        return {
            key: value if key in UNWEIGHTED_KEYS else self.loss_weight * value
            for key, value in losses.items()
        }
