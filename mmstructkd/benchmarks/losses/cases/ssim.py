"""Benchmark cases of the SSIM distillation loss (de Rijk et al., NeurIPS 2022).

One forward+backward step of ``1 - SSIM`` summed over a 5-level FPN of 256
channels for an 800 x 1333 input (levels 100x167, 50x84, 25x42, 13x21,
7x11; level size = ceil(image size / stride), strides 8 to 128), batch 1
and 2, the student requiring gradients and the teacher not:

* ours: :func:`structural_similarity_loss` (separable Gaussian window as
  two depthwise 1-D convolutions on the five stacked statistics,
  hand-written backward);
* ``pytorch_msssim.ssim`` (depthwise separable convolutions, autograd);
* ``kornia.losses.ssim_loss`` with ``padding='valid'`` (it filters with
  reflect padding, then crops to the valid positions; autograd).

All three get the same min-max rescaled maps (our :func:`min_max_rescale`,
inside the timed step), so the rows differ only in the SSIM computation and
give the same loss value. Small levels: each reference is given the window
ours uses, ``fitted_window_size(H, W, 11)`` (7 on the 7x11 level) with
sigma 1.5, because pytorch_msssim 1.0 otherwise skips the smoothing along
a side shorter than the window (older versions fail), which is another
definition. kornia's ssim_loss is ``mean(clamp((1 - SSIM) / 2, 0, 1))``:
doubled here (``eps=0`` so its denominator matches).

Target: ours not slower than the faster of the two references. Each "ours"
row appears twice, once against each reference, so the table shows both
ratios.

Run with ``python tools/benchmark_losses.py --only ssim``.
"""
import math
from typing import Callable, List, Sequence, Tuple

import torch
from torch import Tensor

from mmstructkd.models.losses.ssim import (fitted_window_size,
                                           min_max_rescale,
                                           structural_similarity_loss)

FAMILY = 'ssim'
FPN_STRIDES = (8, 16, 32, 64, 128)
WINDOW_SIZE = 11
SIGMA = 1.5


def fpn_level_sizes(H: int, W: int,
                    strides: Sequence[int] = FPN_STRIDES
                    ) -> List[Tuple[int, int]]:
    """(h, w) of each FPN level for an H x W image: ceil(size / stride)."""
    return [(math.ceil(H / s), math.ceil(W / s)) for s in strides]


def make_inputs(device: str, N: int, C: int, H: int,
                W: int) -> List[Tensor]:
    """Student levels (requiring grad) followed by teacher levels, seeded."""
    gen = torch.Generator().manual_seed(0)
    sizes = fpn_level_sizes(H, W)
    students = [
        torch.randn(N, C, h, w, generator=gen).to(device).requires_grad_()
        for h, w in sizes
    ]
    # Correlated with the student, as a distilled student is.
    teachers = [(s.detach() + torch.randn(N, C, h, w, generator=gen).to(
        device)) for s, (h, w) in zip(students, sizes)]
    return students + teachers


def _split(tensors: Sequence[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
    half = len(tensors) // 2
    return list(tensors[:half]), list(tensors[half:])


def build_ours(device: str, **params) -> Tuple[Callable[..., Tensor],
                                               List[Tensor]]:
    def loss_fn(*tensors: Tensor) -> Tensor:
        levels_S, levels_T = _split(tensors)
        return structural_similarity_loss(levels_S, levels_T, WINDOW_SIZE,
                                          SIGMA)

    return loss_fn, make_inputs(device, **params)


def build_pytorch_msssim(device: str, **params
                         ) -> Tuple[Callable[..., Tensor], List[Tensor]]:
    import pytorch_msssim

    def loss_fn(*tensors: Tensor) -> Tensor:
        total = 0
        for s, t in zip(*_split(tensors)):
            size = fitted_window_size(s.shape[-2], s.shape[-1], WINDOW_SIZE)
            total = total + 1 - pytorch_msssim.ssim(
                min_max_rescale(s), min_max_rescale(t), data_range=1.0,
                win_size=size, win_sigma=SIGMA, K=(0.01, 0.03))
        return total

    return loss_fn, make_inputs(device, **params)


def build_kornia(device: str, **params) -> Tuple[Callable[..., Tensor],
                                                 List[Tensor]]:
    import kornia

    def loss_fn(*tensors: Tensor) -> Tensor:
        total = 0
        for s, t in zip(*_split(tensors)):
            size = fitted_window_size(s.shape[-2], s.shape[-1], WINDOW_SIZE)
            # kornia's sigma is fixed at 1.5, as SIGMA here.
            total = total + 2 * kornia.losses.ssim_loss(
                min_max_rescale(s), min_max_rescale(t), size, max_val=1.0,
                eps=0.0, padding='valid')
        return total

    return loss_fn, make_inputs(device, **params)


CASES = []
for _batch in (1, 2):
    _params = dict(N=_batch, C=256, H=800, W=1333)
    _quick = dict(N=_batch, C=16, H=200, W=333)
    CASES += [
        dict(family=FAMILY, label='ours vs pytorch_msssim', build='build_ours',
             params=_params, quick_params=_quick,
             reference='pytorch_msssim'),
        dict(family=FAMILY, label='pytorch_msssim.ssim',
             key='pytorch_msssim', build='build_pytorch_msssim',
             params=_params, quick_params=_quick),
        dict(family=FAMILY, label='ours vs kornia', build='build_ours',
             params=_params, quick_params=_quick, reference='kornia'),
        dict(family=FAMILY, label='kornia.losses.ssim_loss', key='kornia',
             build='build_kornia', params=_params, quick_params=_quick),
    ]
