"""Structural (SSIM) distillation for detection.

P. de Rijk, L. Schneider, M. Cordts, D. M. Gavrila, *Structural Knowledge
Distillation for Object Detection*, NeurIPS 2022. The l2 feature-imitation
loss on the neck outputs is replaced by ``1 - SSIM(S', T')``: the student
matches the local means, variances and correlation of the teacher's features
rather than their raw values.

Definition, per feature level, for student and teacher maps of the same
shape (N, C, H, W):

* ``S'``, ``T'``: the level min-max rescaled to [0, 1]
  (``normalize='sample'``: per sample over C, H, W, the paper's choice;
  ``'channel'``: per sample and channel; ``'none'``: used as given).
* SSIM per channel with a Gaussian window (11 x 11, sigma 1.5), K1 = 0.01,
  K2 = 0.03, data range 1, over the VALID positions only (no padding), then
  averaged over batch, channels and positions. This is the value of
  ``pytorch_msssim.ssim(S', T', data_range=1, win_size=11, win_sigma=1.5,
  K=(0.01, 0.03))``.
* The loss of a level is ``1 - SSIM``; a tuple of FPN levels gives the SUM of
  the level losses, each scaled by ``level_weights[i]`` (default 1).

Levels smaller than the window (e.g. the 7 x 11 P6 of an 800 x 1333 image)
use the largest odd window that fits, ``min(window_size, H, W)`` rounded
down to odd, with the SAME sigma: the Gaussian is truncated to the level
rather than shrunk, so every level weighs neighbours alike (this is also
what ``pytorch_msssim.ssim(..., win_size=w, win_sigma=sigma)`` computes).
A 1 x 1 level therefore has a 1 x 1 window: its variances and covariance are
zero and SSIM reduces to the luminance term ``(2 s t + C1) / (s^2 + t^2 +
C1)`` per channel.

Speed and memory (:func:`mean_ssim`): the five statistics (x, y, x^2, y^2,
xy) are stacked channels-last and blurred by one pair of depthwise 1-D
convolutions (the Gaussian window is separable); the mean's gradient is
derived by hand and computed in the same pass, so the backward only scales
it. On CPU this runs over chunks of channels small enough to stay in cache
(``CPU_CHUNK_ELEMENTS``), one after the other (each operation uses torch's
intra-op threads as set by the caller); on GPU over all channels at once.
Only the gradient map is kept between forward and backward.
:func:`ssim_map` is the same formula through plain autograd (for inspection
and tests).
"""
import functools
import math
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from mmstructkd.registry import MODELS
from .ssim_window import (LOSS_NAME, blur, blur_channels_last, check_window,
                          fitted_window, fitted_window_size,
                          gaussian_window_1d)
from .utils import (LevelSumLoss, TensorOrLevels, check_map_pair,
                    connector_hint, float32_math, sum_over_levels)

__all__ = [
    'StructuralSimilarityLoss', 'structural_similarity_loss',
    'ssim_level_loss', 'ssim_map', 'mean_ssim', 'ssim_constants',
    'min_max_rescale', 'gaussian_window_1d', 'fitted_window_size', 'LOSS_NAME'
]
NORMALIZE_MODES = ('sample', 'channel', 'none')
# Below this range a map is treated as constant: it is rescaled to zeros
# instead of amplifying rounding noise to [0, 1].
RESCALE_EPS = 1e-6
# Elements of the five stacked statistics of one channel chunk on CPU (8 MB
# of float32): the chunk stays in cache between its steps. Much smaller
# chunks pay per-operation overhead, much larger ones main-memory traffic.
CPU_CHUNK_ELEMENTS = 2**21


class _MinMaxRescale(Function):
    """``(x - min) / max(max - min, eps)`` per group, with a hand-written
    backward: three passes over the map instead of the dozen of autograd's
    records for amin, amax, sub and div."""

    @staticmethod
    def forward(ctx, x: Tensor, start_dim: int, eps: float) -> Tensor:
        groups = x.reshape(math.prod(x.shape[:start_dim]), -1)
        low, argmin = groups.min(dim=1, keepdim=True)
        high, argmax = groups.max(dim=1, keepdim=True)
        span = high - low
        inv_span = 1 / span.clamp_min(eps)
        out = (groups - low).mul_(inv_span)
        ctx.save_for_backward(out, inv_span, argmin, argmax, span >= eps)
        ctx.shape = x.shape
        return out.view(x.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        out, inv_span, argmin, argmax, unclamped = ctx.saved_tensors
        grad = grad.reshape(out.shape)
        grad_x = grad * inv_span
        # out = (x - low) * inv_span with inv_span = 1 / (high - low): the
        # min and the max also move every output, through low and inv_span.
        # (A tie for the min or max gives its share to one of the tied
        # elements, a valid subgradient.)
        grad_sum = grad.sum(dim=1, keepdim=True)
        grad_dot_out = (grad.unsqueeze(1) @ out.unsqueeze(2)).view(-1, 1)
        grad_high = torch.where(unclamped, -inv_span * grad_dot_out, 0)
        grad_low = -inv_span * grad_sum - grad_high
        grad_x.scatter_add_(1, argmin, grad_low)
        grad_x.scatter_add_(1, argmax, grad_high)
        return grad_x.view(ctx.shape), None, None


def min_max_rescale(x: Tensor,
                    normalize: str = 'sample',
                    eps: float = RESCALE_EPS) -> Tensor:
    """Rescale a feature map to [0, 1]: ``(x - min) / max(max - min, eps)``.

    Args:
        x: map of shape (N, C, H, W).
        normalize: ``'sample'``: min and max per sample over C, H, W;
            ``'channel'``: per sample and channel over H, W;
            ``'none'``: return ``x`` unchanged.
        eps: floor of the range, so a constant map becomes zeros instead of
            a division by zero.

    Returns:
        Tensor of the same shape as ``x`` (differentiable, also through the
        min and max).
    """
    _check_normalize(normalize)
    if normalize == 'none':
        return x
    return _MinMaxRescale.apply(x, 1 if normalize == 'sample' else 2, eps)


def _ssim_terms(mu_x: Tensor, mu_y: Tensor, e_xx: Tensor, e_yy: Tensor,
                e_xy: Tensor, c1: float,
                c2: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The four factors of SSIM from the blurred statistics.

    ``SSIM = A1 A2 / (B1 B2)`` with ``A1 = 2 mu_x mu_y + C1``,
    ``A2 = 2 s_xy + C2``, ``B1 = mu_x^2 + mu_y^2 + C1``,
    ``B2 = s_xx + s_yy + C2``, where ``s_xy = E[xy] - mu_x mu_y`` and so on
    (E the Gaussian-weighted local mean).
    """
    mu_xy = mu_x * mu_y
    mu_sq = mu_x.square() + mu_y.square()
    a1 = 2 * mu_xy + c1
    a2 = 2 * (e_xy - mu_xy) + c2
    b1 = mu_sq + c1
    b2 = (e_xx + e_yy) - mu_sq + c2
    return a1, a2, b1, b2


def _blurred_statistics(x: Tensor, y: Tensor,
                        window: Tensor) -> Tuple[Tensor, ...]:
    """mu_x, mu_y, E[x^2], E[y^2], E[xy]: one blur of the five stacked maps.
    """
    stacked = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    return blur(stacked, window).chunk(5, dim=1)


def ssim_constants(x: Tensor,
                   window_size: int = 11,
                   sigma: float = 1.5,
                   k1: float = 0.01,
                   k2: float = 0.03,
                   data_range: float = 1.0) -> Tuple[Tensor, float, float]:
    """The settings of SSIM on maps like ``x``, from its options.

    Args:
        x: map of shape (N, C, H, W): the window is fitted to its H x W and
            takes its dtype and device.
        window_size: odd side of the Gaussian window on large maps.
        sigma: standard deviation of the window.
        k1: luminance stabiliser constant.
        k2: contrast-structure stabiliser constant.
        data_range: value range of the inputs (1 after min-max rescaling).

    Returns:
        ``(window, C1, C2)``: the 1-D window of
        :func:`~mmstructkd.models.losses.ssim_window.fitted_window`,
        ``C1 = (k1 * data_range)^2`` and ``C2 = (k2 * data_range)^2``.
    """
    return (fitted_window(x, window_size, sigma), (k1 * data_range)**2,
            (k2 * data_range)**2)


@float32_math
def ssim_map(x: Tensor, y: Tensor, **options) -> Tensor:
    """Per-channel SSIM at every valid window position.

    With Gaussian-weighted local statistics (mu_x, mu_y, s_xx, s_yy, s_xy)
    and ``C1 = (k1 * data_range)^2``, ``C2 = (k2 * data_range)^2``::

        SSIM = (2 mu_x mu_y + C1) (2 s_xy + C2)
               / ((mu_x^2 + mu_y^2 + C1) (s_xx + s_yy + C2))

    The window is ``fitted_window_size(H, W, window_size)`` wide with the
    given ``sigma`` (truncated, not shrunk, on small maps). Differentiable
    by autograd; the loss uses :func:`mean_ssim`, the mean of this map with
    a faster, leaner gradient.

    Args:
        x: map of shape (N, C, H, W).
        y: map of the same shape.
        options: ``window_size`` (11), ``sigma`` (1.5), ``k1`` (0.01),
            ``k2`` (0.03) and ``data_range`` (1.0), see
            :func:`ssim_constants`.

    Returns:
        Tensor of shape (N, C, H - w + 1, W - w + 1), w the fitted window.
    """
    window, c1, c2 = ssim_constants(x, **options)
    a1, a2, b1, b2 = _ssim_terms(*_blurred_statistics(x, y, window), c1, c2)
    return (a1 * a2) / (b1 * b2)


def _channels_per_chunk(x: Tensor) -> int:
    """Channels per chunk so that the five stacked statistics of a chunk
    stay in a CPU's cache; on GPU all channels at once."""
    if x.device.type != 'cpu':
        return x.shape[1]
    per_channel = 5 * x.shape[0] * x.shape[2] * x.shape[3]
    return max(1, CPU_CHUNK_ELEMENTS // per_channel)


def _stacked_statistics(x: Tensor, y: Tensor) -> Tensor:
    """x, y, x^2, y^2, xy of (N, c, H, W) maps, as one (N, H, W, 5, c)
    tensor: channels innermost, the layout in which depthwise convolutions
    are fastest on CPU (oneDNN vectorises over channels)."""
    batch, channels, height, width = x.shape
    stats = x.new_empty(batch, height, width, 5, channels)
    xs, ys = stats[..., 0, :], stats[..., 1, :]
    xs.copy_(x.permute(0, 2, 3, 1))
    ys.copy_(y.permute(0, 2, 3, 1))
    torch.mul(xs, xs, out=stats[..., 2, :])
    torch.mul(ys, ys, out=stats[..., 3, :])
    torch.mul(xs, ys, out=stats[..., 4, :])
    return stats


class _MeanSSIM(Function):
    """Mean of :func:`ssim_map`, its gradient computed during the forward.

    The mean is a scalar, so its gradient depends on the inputs only: it is
    computed chunk by chunk over the channels while the chunk's statistics
    are still in cache, and the backward only scales it by the incoming
    gradient. With ``D = B1 B2`` and ``S = A1 A2 / D`` (see
    :func:`_ssim_terms`)::

        dS/dE[xy]  = 2 A1 / D
        dS/dE[x^2] = dS/dE[y^2] = -S / B2
        dS/dmu_x   = 2 mu_y (A2 - A1) / D + 2 mu_x S (1 / B2 - 1 / B1)

    and ``d/dx = blur^T(dS/dmu_x) + 2 x blur^T(dS/dE[x^2]) +
    y blur^T(dS/dE[xy])`` (blur^T the adjoint blur), divided by the number
    of positions P. Only that gradient (one map per input that needs one)
    is kept for the backward, instead of autograd's twenty-odd maps.
    """

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, window: Tensor, c1: float,
                c2: float) -> Tensor:
        need_x, need_y = ctx.needs_input_grad[:2]
        batch, channels, height, width = x.shape
        size = window.numel()
        num_positions = batch * channels * (height - size + 1) * (
            width - size + 1)
        grad_x = torch.empty_like(x) if need_x else None
        grad_y = torch.empty_like(y) if need_y else None
        step = _channels_per_chunk(x)

        def chunk_sum(start: int) -> Tensor:
            """Sum of SSIM / P over a chunk of channels; writes the chunk's
            gradients."""
            part = slice(start, start + step)
            stats = _stacked_statistics(x[:, part], y[:, part])
            mu_x, mu_y, e_xx, e_yy, e_xy = blur_channels_last(
                stats, window).unbind(3)
            a1, a2, b1, b2 = _ssim_terms(mu_x, mu_y, e_xx, e_yy, e_xy, c1, c2)
            inv_d = (b1 * b2).reciprocal_().div_(num_positions)
            ssim = a1 * a2 * inv_d  # already divided by P
            total = ssim.sum(dtype=torch.float64)
            if not (need_x or need_y):
                return total
            # d(mean)/d(statistic), stacked as [E[xy], E[x^2] (= E[y^2]),
            # then mu_x and/or mu_y], and blurred back together.
            wrt = x.new_empty(*a1.shape[:3], 2 + need_x + need_y,
                              a1.shape[3])
            torch.mul(a1, inv_d, out=wrt[..., 0, :]).mul_(2)
            wrt_sq = torch.div(ssim, b2, out=wrt[..., 1, :]).neg_()
            cross = (a2 - a1).mul_(inv_d).mul_(2)
            own = (b2 / b1).sub_(1).mul_(wrt_sq).mul_(2)
            if need_x:
                torch.addcmul(own * mu_x, cross, mu_y, out=wrt[..., 2, :])
            if need_y:
                torch.addcmul(own * mu_y, cross, mu_x, out=wrt[..., -1, :])
            back = blur_channels_last(wrt, window, adjoint=True).unbind(3)
            xs, ys = stats[..., 0, :], stats[..., 1, :]
            if need_x:
                grad = torch.addcmul(back[2], xs, back[1], value=2)
                grad_x[:, part] = grad.addcmul_(ys, back[0]).permute(
                    0, 3, 1, 2)
            if need_y:
                grad = torch.addcmul(back[-1], ys, back[1], value=2)
                grad_y[:, part] = grad.addcmul_(xs, back[0]).permute(
                    0, 3, 1, 2)
            return total

        sums = [chunk_sum(start) for start in range(0, channels, step)]
        ctx.save_for_backward(grad_x, grad_y)
        return torch.stack(sums).sum().to(x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        grad_x, grad_y = ctx.saved_tensors
        grad_x = None if grad_x is None else grad_x * grad
        grad_y = None if grad_y is None else grad_y * grad
        return grad_x, grad_y, None, None, None


@float32_math
def mean_ssim(x: Tensor, y: Tensor, **options) -> Tensor:
    """Mean of :func:`ssim_map` over batch, channels and valid positions.

    Same value as ``ssim_map(...).mean()``. When an input requires grad, its
    gradient is computed in the forward pass, in cache-sized channel chunks
    on CPU; the result is not twice differentiable.

    Args: as :func:`ssim_map`.

    Returns:
        Scalar tensor.
    """
    window, c1, c2 = ssim_constants(x, **options)
    if not torch.is_grad_enabled():
        # needs_input_grad ignores no_grad: skip the gradient explicitly.
        x, y = x.detach(), y.detach()
    return _MeanSSIM.apply(x, y, window, c1, c2)


@float32_math
def ssim_level_loss(preds_S: Tensor,
                    preds_T: Tensor,
                    normalize: str = 'sample',
                    **options) -> Tensor:
    """``1 - mean SSIM(S', T')`` of one level, ``S', T'`` the maps
    rescaled by :func:`min_max_rescale` and the SSIM options those of
    :func:`ssim_constants` (the data range is 1)."""
    check_map_pair(
        LOSS_NAME, preds_S, preds_T,
        hint='Distil FPN levels of the same stride computed on the same '
        'images.',
        channels='channel counts',
        channel_hint='SSIM compares each student channel with the same '
        'teacher channel. ' + connector_hint(preds_S, preds_T))
    rescaled_S = min_max_rescale(preds_S, normalize)
    rescaled_T = min_max_rescale(preds_T, normalize)
    return 1 - mean_ssim(rescaled_S, rescaled_T, **options)


@float32_math
def structural_similarity_loss(
        preds_S: TensorOrLevels,
        preds_T: TensorOrLevels,
        window_size: int = 11,
        sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        normalize: str = 'sample',
        level_weights: Optional[Sequence[float]] = None) -> Tensor:
    """SSIM distillation loss, summed over FPN levels.

    ``L = sum_l level_weights[l] * (1 - mean_{n,c,p} SSIM(S'_l, T'_l))``,
    ``S', T'`` min-max rescaled as set by ``normalize``, SSIM as in
    :func:`ssim_map` (data range 1), ``p`` the valid window positions.

    Runs in float32 even under autocast (float64 inputs stay float64).
    The teacher is not detached here; pass it computed under no_grad.

    Args:
        preds_S: student map (N, C, H, W), or a tuple of FPN levels.
        preds_T: teacher map(s), same shapes as the student's.
        window_size: odd side of the Gaussian window (smaller odd window on
            levels smaller than it, see :func:`fitted_window_size`).
        sigma: standard deviation of the window.
        k1: luminance stabiliser constant.
        k2: contrast-structure stabiliser constant.
        normalize: ``'sample'``, ``'channel'`` or ``'none'``, see
            :func:`min_max_rescale`. With ``'none'`` the maps should already
            lie in [0, 1].
        level_weights: weight per level (default 1 each).

    Returns:
        Scalar tensor, 0 for identical maps.

    Example:
        >>> feats_S = [torch.randn(2, 256, s, s + 4, requires_grad=True)
        ...            for s in (25, 13, 7)]
        >>> feats_T = [torch.randn(2, 256, s, s + 4) for s in (25, 13, 7)]
        >>> structural_similarity_loss(feats_S, feats_T).backward()
    """
    check_window(window_size, sigma)
    _check_normalize(normalize)
    level_loss = functools.partial(
        ssim_level_loss, normalize=normalize, window_size=window_size,
        sigma=sigma, k1=k1, k2=k2)
    return sum_over_levels(LOSS_NAME, level_loss, preds_S, preds_T,
                           level_weights)


def _check_normalize(normalize: str) -> None:
    if normalize not in NORMALIZE_MODES:
        raise ValueError(f'{LOSS_NAME}: normalize must be one of '
                         f'{NORMALIZE_MODES}, got {normalize!r}.')


@MODELS.register_module()
class StructuralSimilarityLoss(LevelSumLoss):
    """``1 - SSIM`` between min-max rescaled student and teacher features.

    Structural distillation of de Rijk et al. (NeurIPS 2022) for detection
    necks; see :func:`structural_similarity_loss` for the formula. A tuple
    of FPN levels gives the sum of the per-level losses.

    Args:
        window_size: odd side of the Gaussian window. Default 11.
        sigma: standard deviation of the window. Default 1.5.
        k1: luminance stabiliser constant. Default 0.01.
        k2: contrast-structure stabiliser constant. Default 0.03.
        normalize: min-max rescaling to [0, 1]: ``'sample'`` (per sample
            over C, H, W; default), ``'channel'`` or ``'none'``.
        loss_weight: factor applied to the loss. Default 1.0.
        level_weights: weight per FPN level; None weighs all levels 1.

    Example:
        >>> loss = StructuralSimilarityLoss(loss_weight=1.0)
        >>> feats_S = torch.randn(2, 256, 25, 42, requires_grad=True)
        >>> loss(feats_S, torch.randn(2, 256, 25, 42)).backward()
    """

    LOSS_NAME = LOSS_NAME

    def __init__(self,
                 window_size: int = 11,
                 sigma: float = 1.5,
                 k1: float = 0.01,
                 k2: float = 0.03,
                 normalize: str = 'sample',
                 loss_weight: float = 1.0,
                 level_weights: Optional[Sequence[float]] = None) -> None:
        super().__init__(loss_weight, level_weights)
        check_window(window_size, sigma)
        _check_normalize(normalize)
        self.window_size = window_size
        self.sigma = sigma
        self.k1 = k1
        self.k2 = k2
        self.normalize = normalize

    def level_loss(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        return ssim_level_loss(
            preds_S, preds_T, self.normalize, window_size=self.window_size,
            sigma=self.sigma, k1=self.k1, k2=self.k2)

    def extra_repr(self) -> str:
        return (f'window_size={self.window_size}, sigma={self.sigma}, '
                f'normalize={self.normalize!r}, '
                f'loss_weight={self.loss_weight}')
