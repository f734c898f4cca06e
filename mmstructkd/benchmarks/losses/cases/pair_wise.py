"""Benchmark cases of the full-resolution pair-wise loss (issue #3).

Ours (Gram identity, :func:`pair_wise_loss` with ``scale=None``) against the
naive version that builds the two M x M affinity matrices, at C = 256 on
32x64, 64x128 and 128x256 maps (the naive one only where it fits), and ours
at 128x256 with C = 512.

Targets: at 64x128, >= 10x faster and >= 10x less peak memory than naive;
at 128x256 with C = 512, < 2 s per step and < 300 MB beyond the two inputs
(on the 2-core CPU development machine).

Run with ``python tools/benchmark_losses.py --only pair-wise``.
"""
from typing import TYPE_CHECKING, Callable, List, Optional, Tuple

if TYPE_CHECKING:
    from torch import Tensor

# torch and the loss are imported inside the functions: listing CASES
# needs neither.
FAMILY = 'pair-wise'
# One M x M float32 matrix of 3e8 elements is 1.2 GB, and the naive step
# holds about five of them: larger maps are reported as skipped.
NAIVE_MAX_ELEMS = 3 * 10**8


def make_inputs(device: str, N: int, C: int, H: int, W: int,
                C_T: Optional[int] = None) -> List['Tensor']:
    """Student (requires grad) and teacher feature maps, seeded."""
    import torch
    gen = torch.Generator().manual_seed(0)
    preds_S = torch.randn(N, C, H, W, generator=gen).to(device)
    preds_T = torch.randn(N, C_T or C, H, W, generator=gen).to(device)
    return [preds_S.requires_grad_(), preds_T]


def naive_full_resolution(preds_S: 'Tensor', preds_T: 'Tensor') -> 'Tensor':
    """mean_{n,i,j} (A_T - A_S)^2 with both M x M affinities built."""
    import torch.nn.functional as F
    unit_S = F.normalize(preds_S.flatten(2), dim=1)
    unit_T = F.normalize(preds_T.flatten(2), dim=1)
    affinity_S = unit_S.transpose(1, 2) @ unit_S
    affinity_T = unit_T.transpose(1, 2) @ unit_T
    return (affinity_T - affinity_S).square().mean()


def build_ours(device: str, **params) -> Tuple[Callable[..., 'Tensor'],
                                               List['Tensor']]:
    from mmstructkd.models.losses.pair_wise import pair_wise_loss

    def loss_fn(preds_S, preds_T):
        return pair_wise_loss(preds_S, preds_T, scale=None)

    return loss_fn, make_inputs(device, **params)


def build_naive(device: str, **params) -> Tuple[Callable[..., 'Tensor'],
                                                List['Tensor']]:
    return naive_full_resolution, make_inputs(device, **params)


def estimate_elems(build: str, params: dict) -> int:
    """Largest tensor of a step: an M x M matrix per image for the naive
    version, an input map for ours."""
    num_nodes = params['H'] * params['W']
    if build == 'build_naive':
        return params.get('N', 1) * num_nodes * num_nodes
    return params.get('N', 1) * params['C'] * num_nodes


CASES = []
for _height, _width in [(32, 64), (64, 128), (128, 256)]:
    _params = dict(N=1, C=256, H=_height, W=_width)
    CASES.append(
        dict(family=FAMILY, label='full-res (ours)', build='build_ours',
             params=_params, reference='naive'))
    CASES.append(
        dict(family=FAMILY, label='naive M x M', key='naive',
             build='build_naive', params=_params,
             max_elems=NAIVE_MAX_ELEMS))
CASES.append(
    dict(family=FAMILY, label='full-res (ours)', build='build_ours',
         params=dict(N=1, C=512, H=128, W=256)))
