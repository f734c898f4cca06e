"""Prediction-mimicking losses of CrossKD (Wang et al., CVPR 2024).

"CrossKD: Cross-Head Knowledge Distillation for Object Detection". The
student's intermediate head features run through the teacher's remaining
head layers (``CrossKDDistill``); these *cross-head* predictions are then
pulled towards the teacher's own predictions of a dense detector head:

* class scores (sigmoid classifiers, RetinaNet/GFL): quality focal loss with
  the teacher's probabilities as soft targets, :func:`kd_quality_focal_loss`;
* boxes: GIoU between the boxes both predictions decode to,
  :func:`box_giou_distillation_loss` (GFL's distance distributions, or
  RetinaNet's anchor deltas);
* GFL's box-side distributions: KL divergence bin by bin,
  :func:`distribution_kl_loss`.

Each takes one level ``(N, C, H, W)`` or a tuple of FPN levels and sums over
all of them before normalising once. Every term is normalised by the same
number, the teacher's *soft foreground count*
``F = max(1, sum over anchors of max_c sigmoid(t_c))``: the reference
implementation divides by the positives of the student's label assignment,
which a distiller does not see; the teacher's confidence mass plays that
role (and is exactly the reference's normaliser of GFL's box terms). The
box terms weight each anchor by the same ``max_c sigmoid(t_c)``, as the
reference does.
"""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmstructkd.registry import MODELS
from .utils import check_same_shape, float32_math

TensorOrLevels = Union[Tensor, Sequence[Tensor]]
BOX_CODINGS = ('distance', 'delta')
# mmdet's DeltaXYWHBBoxCoder clamps dw, dh at |log(16 / 1000)| before exp.
MAX_LOG_RATIO = abs(math.log(16 / 1000))


def _levels(loss_name: str, *maps: TensorOrLevels) -> Tuple[tuple, ...]:
    """Each argument as a tuple of levels; all must have as many."""
    levels = tuple((m, ) if isinstance(m, Tensor) else tuple(m) for m in maps)
    counts = {len(x) for x in levels}
    if len(counts) != 1:
        raise ValueError(
            f'{loss_name}: the inputs have different numbers of FPN levels: '
            f'{[len(x) for x in levels]}.')
    return levels


def anchors_and_classes(scores: Tensor, num_classes: Optional[int],
                        loss_name: str) -> Tensor:
    """Class scores ``(N, A*C, H, W)`` as ``(N, A, C, H, W)`` (mmdet's
    layout: anchor-major). ``num_classes=None``: one anchor per position."""
    n, channels, h, w = scores.shape
    classes = channels if num_classes is None else num_classes
    if channels % classes:
        raise ValueError(
            f'{loss_name}: {channels} score channels are not a multiple of '
            f'num_classes={num_classes}.')
    return scores.reshape(n, channels // classes, classes, h, w)


def foreground_weights(scores_T: Tensor,
                       num_classes: Optional[int] = None) -> Tensor:
    """``max_c sigmoid(t_c)`` per anchor: ``(N, A*C, H, W)`` ->
    ``(N, A, H, W)``, without gradient."""
    scores = anchors_and_classes(scores_T.detach(), num_classes,
                                 'foreground_weights')
    return scores.sigmoid().amax(dim=2)


def soft_foreground_count(scores_T: Sequence[Tensor],
                          num_classes: Optional[int] = None) -> Tensor:
    """The normaliser ``F = max(1, sum_levels sum_anchors max_c
    sigmoid(t_c))``."""
    total = sum(foreground_weights(t, num_classes).sum() for t in scores_T)
    return total.clamp(min=1.0)


@float32_math
def kd_quality_focal_loss(preds_S: TensorOrLevels,
                          preds_T: TensorOrLevels,
                          num_classes: Optional[int] = None,
                          beta: float = 1.0) -> Tensor:
    """Quality focal loss with the teacher's probabilities as targets.

    With ``p = sigmoid(s)`` and ``q = sigmoid(t)`` per anchor and class,
    ``L = 1 / F * sum_{levels, anchors, classes} BCE(p, q) * |p - q|^beta``
    (``BCE(p, q) = -q log p - (1 - q) log(1 - p)``; ``F`` the teacher's
    soft foreground count, see the module docstring). The teacher gets no
    gradient.

    Args:
        preds_S: cross-head (or student) class logits ``(N, A*C, H, W)``,
            or a tuple of levels.
        preds_T: the teacher's, same shapes.
        num_classes: C, to group anchors for ``F``; None: A = 1.
        beta: exponent of the focal term.

    Returns:
        Scalar tensor.

    Example:
        >>> s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
        >>> float(kd_quality_focal_loss(t, t))  # |p - q| = 0 everywhere
        0.0
        >>> kd_quality_focal_loss(s, t).shape
        torch.Size([])
    """
    levels_S, levels_T = _levels('KDQualityFocalLoss', preds_S, preds_T)
    total = 0.
    for s, t in zip(levels_S, levels_T):
        check_same_shape('KDQualityFocalLoss', s, t)
        q = t.detach().sigmoid()
        bce = F.binary_cross_entropy_with_logits(s, q, reduction='none')
        total = total + (bce * (s.sigmoid() - q).abs().pow(beta)).sum()
    return total / soft_foreground_count(levels_T, num_classes)


def distance_boxes(preds: Tensor) -> Tensor:
    """GFL's box distributions ``(N, 4*(n+1), H, W)`` (sides left, top,
    right, bottom; n+1 bins each) as boxes ``(N, 1, H, W, 4)`` around their
    anchor point, in stride units: ``(-l, -t, r, b)`` with each side the
    expectation ``sum_i i * softmax(logits)_i`` (GFL's ``Integral``)."""
    n, channels, h, w = preds.shape
    if channels % 4:
        raise ValueError(
            f'distance boxes need 4 * (reg_max + 1) channels, got {channels}.')
    bins = channels // 4
    probs = preds.reshape(n, 4, bins, h, w).softmax(dim=2)
    support = torch.arange(bins, dtype=probs.dtype, device=probs.device)
    sides = (probs * support.view(1, 1, bins, 1, 1)).sum(dim=2)
    left, top, right, bottom = sides.unbind(dim=1)
    return torch.stack([-left, -top, right, bottom], dim=-1).unsqueeze(1)


def delta_boxes(preds: Tensor,
                aspect_ratios: Optional[Sequence[float]] = None,
                target_stds: Sequence[float] = (1., 1., 1., 1.)) -> Tensor:
    """RetinaNet's anchor deltas ``(N, A*4, H, W)`` (dx, dy, dw, dh,
    target means 0) as boxes ``(N, A, H, W, 4)``.

    Each anchor is taken centred at 0 with area 1 and height/width ratio
    ``aspect_ratios[a]`` (mmdet's order: ratio-major, then scale; None:
    square): GIoU does not change under a shift or a uniform scaling, so
    these boxes give the GIoU of the real decoded ones exactly, as long as
    the anchors of one position differ only by scale within a ratio.
    """
    n, channels, h, w = preds.shape
    if channels % 4:
        raise ValueError(f'delta boxes need A * 4 channels, got {channels}.')
    num_anchors = channels // 4
    ratios = [1.0] * num_anchors if aspect_ratios is None else list(
        aspect_ratios)
    if len(ratios) != num_anchors:
        raise ValueError(
            f'anchor_aspect_ratios has {len(ratios)} entries but the box '
            f'predictions have {num_anchors} anchors per position.')
    stds = preds.new_tensor(target_stds).view(1, 1, 4, 1, 1)
    deltas = preds.reshape(n, num_anchors, 4, h, w) * stds
    ratio = preds.new_tensor(ratios).view(1, num_anchors, 1, 1)
    anchor_w, anchor_h = ratio.rsqrt(), ratio.sqrt()
    dx, dy, dw, dh = deltas.unbind(dim=2)
    cx, cy = dx * anchor_w, dy * anchor_h
    half_w = 0.5 * anchor_w * dw.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO).exp()
    half_h = 0.5 * anchor_h * dh.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO).exp()
    return torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h],
                       dim=-1)


def aligned_giou(boxes_a: Tensor, boxes_b: Tensor,
                 eps: float = 1e-6) -> Tensor:
    """Generalised IoU of paired boxes ``(..., 4)`` (x1, y1, x2, y2):
    ``IoU - (|C| - |A u B|) / |C|`` with C the smallest enclosing box."""
    def area(b):
        return (b[..., 2] - b[..., 0]).clamp(min=0) * \
            (b[..., 3] - b[..., 1]).clamp(min=0)

    top_left = torch.maximum(boxes_a[..., :2], boxes_b[..., :2])
    bottom_right = torch.minimum(boxes_a[..., 2:], boxes_b[..., 2:])
    overlap = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    union = area(boxes_a) + area(boxes_b) - overlap + eps
    enclose_tl = torch.minimum(boxes_a[..., :2], boxes_b[..., :2])
    enclose_br = torch.maximum(boxes_a[..., 2:], boxes_b[..., 2:])
    enclose = (enclose_br - enclose_tl).clamp(min=0).prod(dim=-1) + eps
    return overlap / union - (enclose - union) / enclose


@float32_math
def box_giou_distillation_loss(preds_S: TensorOrLevels,
                               preds_T: TensorOrLevels,
                               scores_T: TensorOrLevels,
                               box_coding: str = 'distance',
                               num_classes: Optional[int] = None,
                               anchor_aspect_ratios: Optional[
                                   Sequence[float]] = None,
                               target_stds: Sequence[float] = (1., 1., 1.,
                                                               1.)) -> Tensor:
    """GIoU loss between the boxes of two box predictions.

    ``L = 1 / F * sum_{levels, anchors} w_a * (1 - GIoU(B_S(a), B_T(a)))``
    with ``w_a = max_c sigmoid(t_c)`` the teacher's confidence at anchor a
    and ``F`` the teacher's soft foreground count (module docstring).

    Args:
        preds_S: cross-head box predictions, ``(N, A*K, H, W)`` or levels.
        preds_T: the teacher's, same shapes (no gradient).
        scores_T: the teacher's class logits ``(N, A*C, H, W)`` per level.
        box_coding: ``'distance'`` (GFL: ``K = 4 * (reg_max + 1)``,
            :func:`distance_boxes`) or ``'delta'`` (RetinaNet: ``K = 4``,
            :func:`delta_boxes`).
        num_classes: C, to group anchors of ``scores_T``; None: A = 1.
        anchor_aspect_ratios, target_stds: of ``'delta'`` coding.

    Returns:
        Scalar tensor.
    """
    if box_coding not in BOX_CODINGS:
        raise ValueError(f'box_coding must be one of {BOX_CODINGS}, got '
                         f'{box_coding!r}.')
    levels_S, levels_T, levels_C = _levels('BoxGIoUDistillLoss', preds_S,
                                           preds_T, scores_T)
    total = 0.
    for s, t, c in zip(levels_S, levels_T, levels_C):
        check_same_shape('BoxGIoUDistillLoss', s, t)
        if box_coding == 'distance':
            boxes_S, boxes_T = distance_boxes(s), distance_boxes(t.detach())
        else:
            boxes_S, boxes_T = (delta_boxes(x, anchor_aspect_ratios,
                                            target_stds)
                                for x in (s, t.detach()))
        weights = foreground_weights(c, num_classes)
        if weights.shape != boxes_S.shape[:-1]:
            raise ValueError(
                f'BoxGIoUDistillLoss: the teacher scores give anchor weights '
                f'of shape {tuple(weights.shape)} but the boxes are '
                f'{tuple(boxes_S.shape[:-1])}: set num_classes to the '
                f'head\'s number of classes.')
        total = total + (weights * (1 - aligned_giou(boxes_S, boxes_T))).sum()
    return total / soft_foreground_count(levels_C, num_classes)


@float32_math
def distribution_kl_loss(preds_S: TensorOrLevels,
                         preds_T: TensorOrLevels,
                         scores_T: TensorOrLevels,
                         tau: float = 1.0) -> Tensor:
    """KL divergence between GFL's box-side distributions (localisation
    distillation).

    Per position and side, ``KL(softmax(t / tau) || softmax(s / tau)) *
    tau^2`` over the n+1 bins; averaged over the 4 sides, weighted by the
    teacher's confidence ``w`` and divided by ``F`` (module docstring):
    ``L = 1 / F * sum w * mean_sides KL``.

    Args:
        preds_S: cross-head distributions ``(N, 4*(n+1), H, W)`` or levels.
        preds_T: the teacher's, same shapes (no gradient).
        scores_T: the teacher's class logits (one anchor per position).
        tau: temperature.
    """
    levels_S, levels_T, levels_C = _levels('BoxDistributionKLLoss', preds_S,
                                           preds_T, scores_T)
    total = 0.
    for s, t, c in zip(levels_S, levels_T, levels_C):
        check_same_shape('BoxDistributionKLLoss', s, t)
        n, channels, h, w = s.shape
        log_p_S = (s.reshape(n, 4, channels // 4, h, w) / tau).log_softmax(2)
        log_p_T = (t.detach().reshape(n, 4, channels // 4, h, w) /
                   tau).log_softmax(2)
        kl = (log_p_T.exp() * (log_p_T - log_p_S)).sum(dim=2) * tau**2
        weights = foreground_weights(c).squeeze(1)
        total = total + (weights * kl.mean(dim=1)).sum()
    return total / soft_foreground_count(levels_C)


@MODELS.register_module()
class KDQualityFocalLoss(nn.Module):
    """:func:`kd_quality_focal_loss` times ``loss_weight``.

    Args:
        beta: exponent of the focal term ``|p - q|^beta``.
        num_classes: classes of the head (RetinaNet: several anchors per
            position); None: one anchor per position (GFL).
        loss_weight: multiplier.

    Example:
        >>> loss = KDQualityFocalLoss(beta=1.0)
        >>> loss(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)).shape
        torch.Size([])
    """

    def __init__(self, beta: float = 1.0, num_classes: Optional[int] = None,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.beta = beta
        self.num_classes = num_classes
        self.loss_weight = loss_weight

    def forward(self, preds_S: TensorOrLevels,
                preds_T: TensorOrLevels) -> Tensor:
        return self.loss_weight * kd_quality_focal_loss(
            preds_S, preds_T, self.num_classes, self.beta)


@MODELS.register_module()
class BoxGIoUDistillLoss(nn.Module):
    """:func:`box_giou_distillation_loss` times ``loss_weight``.

    Args:
        box_coding: ``'distance'`` (GFL) or ``'delta'`` (RetinaNet).
        num_classes: classes of the head, to read A anchors per position
            from the teacher's scores; None: one anchor (GFL).
        anchor_aspect_ratios: ``'delta'`` coding: height/width of each of
            the A anchors of a position in the head's order, e.g. RetinaNet
            ``[r for r in (0.5, 1.0, 2.0) for _ in range(3)]``.
        target_stds: ``'delta'`` coding: the box coder's target stds.
        loss_weight: multiplier.
    """

    def __init__(self,
                 box_coding: str = 'distance',
                 num_classes: Optional[int] = None,
                 anchor_aspect_ratios: Optional[Sequence[float]] = None,
                 target_stds: Sequence[float] = (1., 1., 1., 1.),
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if box_coding not in BOX_CODINGS:
            raise ValueError(f'box_coding must be one of {BOX_CODINGS}, got '
                             f'{box_coding!r}.')
        self.box_coding = box_coding
        self.num_classes = num_classes
        self.anchor_aspect_ratios = anchor_aspect_ratios
        self.target_stds = tuple(target_stds)
        self.loss_weight = loss_weight

    def forward(self, preds_S: TensorOrLevels, preds_T: TensorOrLevels,
                scores_T: TensorOrLevels) -> Tensor:
        return self.loss_weight * box_giou_distillation_loss(
            preds_S, preds_T, scores_T, self.box_coding, self.num_classes,
            self.anchor_aspect_ratios, self.target_stds)


@MODELS.register_module()
class BoxDistributionKLLoss(nn.Module):
    """:func:`distribution_kl_loss` times ``loss_weight`` (GFL heads).

    Args:
        tau: temperature.
        loss_weight: multiplier.
    """

    def __init__(self, tau: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.tau = tau
        self.loss_weight = loss_weight

    def forward(self, preds_S: TensorOrLevels, preds_T: TensorOrLevels,
                scores_T: TensorOrLevels) -> Tensor:
        return self.loss_weight * distribution_kl_loss(
            preds_S, preds_T, scores_T, self.tau)
