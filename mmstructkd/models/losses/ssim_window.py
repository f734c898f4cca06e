"""The Gaussian window of SSIM and the separable blur with it.

Used by :mod:`~mmstructkd.models.losses.ssim`: the 1-D Gaussian (the 2-D
window is its outer product with itself), its size fitted to small feature
levels, and the blur of every channel by it, as two depthwise 1-D
convolutions, with its adjoint for hand-written gradients.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

LOSS_NAME = 'StructuralSimilarityLoss'


def check_window(window_size: int, sigma: float) -> None:
    """Raise a ``ValueError`` naming the SSIM loss for a window size that
    is not a positive odd int or a sigma that is not positive."""
    if not isinstance(window_size, int) or window_size < 1 \
            or window_size % 2 == 0:
        raise ValueError(f'{LOSS_NAME}: window_size must be an odd positive '
                         f'integer, got {window_size!r}.')
    if not sigma > 0:
        raise ValueError(
            f'{LOSS_NAME}: sigma must be positive, got {sigma!r}.')


def gaussian_window_1d(size: int,
                       sigma: float,
                       dtype: torch.dtype = torch.float32,
                       device: Optional[torch.device] = None) -> Tensor:
    """Normalised 1-D Gaussian window of odd length ``size``.

    ``g[i] = exp(-(i - (size - 1) / 2)^2 / (2 sigma^2)) / sum_j g[j]``.
    The 2-D SSIM window is its outer product with itself.

    Args:
        size: window length, odd and >= 1.
        sigma: standard deviation in pixels, > 0.
        dtype: dtype of the result (computed in float64 first).
        device: device of the result.

    Returns:
        Tensor of shape (size, ) summing to 1.
    """
    check_window(size, sigma)
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    window = torch.exp(-coords.square() / (2 * sigma**2))
    return (window / window.sum()).to(dtype=dtype, device=device)


def fitted_window_size(height: int, width: int, window_size: int) -> int:
    """Largest odd window ``<= min(window_size, height, width)``.

    ``window_size`` for levels at least as large as the window, a smaller
    odd window for smaller levels, 1 for a level with a side of 1 or 2.
    """
    size = min(window_size, height, width)
    return size if size % 2 == 1 else size - 1


def fitted_window(x: Tensor, window_size: int, sigma: float) -> Tensor:
    """The 1-D window for maps like ``x`` (N, C, H, W): of
    :func:`fitted_window_size`, with the given ``sigma`` (truncated, not
    shrunk), in ``x``'s dtype and on its device."""
    size = fitted_window_size(x.shape[-2], x.shape[-1], window_size)
    return gaussian_window_1d(size, sigma, dtype=x.dtype, device=x.device)


def blur(maps: Tensor, window: Tensor, adjoint: bool = False) -> Tensor:
    """Separable Gaussian blur of every channel of ``maps`` (N, K, H, W).

    Forward: the valid correlation with the 2-D window (outer product of
    ``window``), as two depthwise 1-D convolutions, output (N, K, H - w + 1,
    W - w + 1). ``adjoint=True``: its transpose, the full convolution, from
    (N, K, H', W') back to (N, K, H' + w - 1, W' + w - 1); the gradient of
    the forward blur. The Gaussian is symmetric, so the full convolution is
    the same correlation on the map zero-padded by ``w - 1``: a convolution
    with padding, which runs on the same fast CPU path as the forward (a
    grouped transposed convolution may not).
    """
    channels, size = maps.shape[1], window.numel()
    if size == 1:
        # A 1-wide window (levels with a side of 1 or 2) is the identity
        # (its weight is 1): no convolution, whose CPU fallback for 1 x 1
        # depthwise kernels loops over the channels one by one.
        return maps * window
    # Materialised (not expanded) weights: the convolution would otherwise
    # copy them on every call.
    weight_h = window.view(1, 1, size, 1).repeat(channels, 1, 1, 1)
    weight_w = window.view(1, 1, 1, size).repeat(channels, 1, 1, 1)
    pad = size - 1 if adjoint else 0
    blurred = F.conv2d(maps, weight_h, groups=channels, padding=(pad, 0))
    return F.conv2d(blurred, weight_w, groups=channels, padding=(0, pad))


def blur_channels_last(maps: Tensor, window: Tensor,
                       adjoint: bool = False) -> Tensor:
    """:func:`blur` of an (N, H, W, k, c) stack, returned in that layout."""
    batch, height, width, groups, channels = maps.shape
    as_nchw = maps.view(batch, height, width, -1).permute(0, 3, 1, 2)
    out = blur(as_nchw, window, adjoint).permute(0, 2, 3, 1)
    return out.reshape(batch, out.shape[1], out.shape[2], groups, channels)
