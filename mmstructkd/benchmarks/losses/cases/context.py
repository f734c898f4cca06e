"""Benchmark cases of the context (self-relation) loss of BCD.

Relation KL in blocks of rows (ours, ``context_relation_kl``: blocks of
about ``BLOCK_ELEMENTS`` relation entries, at most 4096 rows, the student's
gradient formed block by block during the forward) against the naive
version that materialises the M x M relation matrices and lets autograd
keep them (``context_relation_kl_naive``), one forward+backward step on one
image. Both run four M x M x C matrix products per step; the target is ours
at least as fast as naive wherever naive fits, in bounded memory.

Sizes: 64 x 128 (M = 8192) with C = 256, where both fit; and 128 x 256
(M = 32768, a 1024 x 2048 frame at 1/8 resolution) with C = 64, because
at C = 256 one CPU step takes the better part of a minute (the 4 * 2 M^2 C
floating-point operations dominate). There the naive version would need
about seven 4.3 GB float32 M x M tensors alive at once and is skipped by
its ``max_elems`` guard.

Run with ``python tools/benchmark_losses.py --only context``.
"""
from typing import Callable, List, Tuple

import torch
from torch import Tensor

from mmstructkd.models.losses.context import (block_rows,
                                              context_relation_kl,
                                              context_relation_kl_naive)

TAU = 0.1
# M x M float32 tensors that autograd keeps alive in the naive step (the two
# similarity matrices, their log-softmaxes, R_T, the difference and product,
# then the gradients); used to estimate its memory.
NAIVE_LIVE_MATRICES = 7


def _inputs(device: str, N: int, C: int, H: int, W: int) -> List[Tensor]:
    generator = torch.Generator().manual_seed(0)
    preds_S = torch.randn(N, C, H, W, generator=generator)
    preds_T = torch.randn(N, C, H, W, generator=generator)
    return [preds_S.to(device).requires_grad_(), preds_T.to(device)]


def build_ours(device: str,
               N: int = 1,
               C: int = 256,
               H: int = 64,
               W: int = 128,
               chunk_size: int = 4096
               ) -> Tuple[Callable[..., Tensor], List[Tensor]]:
    """Relation KL in blocks of rows, gradient formed in the forward."""

    def loss_fn(preds_S: Tensor, preds_T: Tensor) -> Tensor:
        return context_relation_kl(preds_S, preds_T, TAU, chunk_size)

    return loss_fn, _inputs(device, N, C, H, W)


def build_naive(device: str,
                N: int = 1,
                C: int = 256,
                H: int = 64,
                W: int = 128) -> Tuple[Callable[..., Tensor], List[Tensor]]:
    """Full M x M relation matrices, plain autograd."""

    def loss_fn(preds_S: Tensor, preds_T: Tensor) -> Tensor:
        return context_relation_kl_naive(preds_S, preds_T, TAU)

    return loss_fn, _inputs(device, N, C, H, W)


def estimate_elems(build: str, params: dict) -> int:
    """Elements the step needs at its peak (what ``max_elems`` guards)."""
    N, C = params.get('N', 1), params.get('C', 256)
    M = params.get('H', 64) * params.get('W', 128)
    if build == 'build_naive':
        return NAIVE_LIVE_MATRICES * N * M * M
    rows = block_rows(M, params.get('chunk_size', 4096))
    return 4 * rows * M + 4 * N * M * C


# About 6 GB of float32: fits a 16 GB machine next to other work.
NAIVE_MAX_ELEMS = 1_500_000_000

CASES = []
for _C, _H, _W in ((256, 64, 128), (64, 128, 256)):
    _params = dict(N=1, C=_C, H=_H, W=_W)
    CASES += [
        dict(family='context', label='blocks of rows (ours)',
             build='build_ours', params=_params, reference='naive'),
        dict(family='context', label='naive M x M', key='naive',
             build='build_naive', params=_params,
             max_elems=NAIVE_MAX_ELEMS),
    ]
