"""Pair-wise (affinity) distillation of SKD (Liu et al., CVPR 2019).

The student is taught the teacher's *affinities*: how similar every pair of
spatial nodes is. Node features are L2-normalised over channels, so an
affinity is a cosine similarity and student and teacher may have different
channel counts.

Two ways of choosing the nodes:

* ``scale=0.5`` (the official setting): the map is max-pooled with
  ``kernel = stride = (int(H * scale), int(W * scale))`` and ``ceil_mode``,
  so a 65x65 map becomes 3x3 nodes.
* ``scale=None`` (full resolution): every position is a node. The M x M
  affinity matrices are never built; the loss uses the Gram identity
  (see :func:`affinity_distance`) and costs O(C^2 M) time and O(C^2) extra
  memory instead of O(C M^2) and O(M^2). At C = 512 a 128x256 map
  (M = 32768, 64 MB per input) needs ~100 MB beyond its inputs (the
  student's 64 MB gradient and four 8 MB chunks; 150-210 MB of peak RSS
  measured by tools/benchmark_losses.py) where the naive version would need
  several 4.3 GB matrices.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from mmstructkd.registry import MODELS
from .utils import LevelSumLoss, check_map_pair, float32_math

LOSS_NAME = 'PairWiseLoss'
POOL_MODES = ('max', 'avg')
# Size of one step of the full-resolution loop, in elements of a (N, C, k)
# chunk: 2M elements (8 MB in float32) keep each GEMM large enough for full
# BLAS speed and the number of small ops (each a thread barrier) low, while
# the four chunk-sized temporaries stay far below the size of a large input.
CHUNK_ELEMENTS = 2**21
MIN_CHUNK_SIZE = 256
# Same default as F.normalize: a node whose norm is below eps is divided by
# eps, so an all-zero node stays zero instead of becoming NaN.
DEFAULT_EPS = 1e-12


def node_kernel(height: int, width: int,
                scale: float) -> Tuple[int, int]:
    """Pooling kernel (= stride) that turns an H x W map into nodes.

    ``(int(H * scale), int(W * scale))`` as in the official code, clamped to
    at least 1 (a tiny map or scale would otherwise give a zero kernel) and
    at most the map size.
    """
    return (min(height, max(1, int(height * scale))),
            min(width, max(1, int(width * scale))))


def pool_nodes(feats: Tensor,
               scale: Optional[float] = 0.5,
               pool: str = 'max') -> Tensor:
    """Pool a feature map into the nodes of the affinity graph.

    The kernel and stride are :func:`node_kernel` and ``ceil_mode=True``, so
    the last row/column of windows may hang over the border. For
    ``pool='avg'`` such a window averages only the positions inside the map
    (``padding=0`` and ``count_include_pad=False``: the divisor is the number
    of valid positions, never the full kernel area).

    Args:
        feats: feature map of shape (N, C, H, W).
        scale: node size as a fraction of the map size, in (0, 1];
            ``None`` returns ``feats`` unchanged (every position a node).
        pool: ``'max'`` (official) or ``'avg'``.

    Returns:
        Tensor of shape (N, C, ceil(H / kh), ceil(W / kw)).
    """
    _check_options(scale, pool)
    if scale is None:
        return feats
    kernel = node_kernel(feats.shape[-2], feats.shape[-1], scale)
    if pool == 'max':
        return F.max_pool2d(feats, kernel, stride=kernel, ceil_mode=True)
    return F.avg_pool2d(
        feats, kernel, stride=kernel, ceil_mode=True, count_include_pad=False)


def affinity_distance(nodes_S: Tensor,
                      nodes_T: Tensor,
                      method: str = 'auto',
                      eps: float = DEFAULT_EPS,
                      chunk_size: Optional[int] = None) -> Tensor:
    """Mean squared difference of the cosine-affinity matrices.

    With x_i the i-th node (column) normalised over channels,
    ``A[i, j] = <x_i, x_j>`` and the result is

        mean_{n, i, j} (A_T[n, i, j] - A_S[n, i, j])^2.

    Two exact routes give this value:

    * ``'direct'`` builds both M x M matrices: O(C M^2) time, O(M^2) memory.
    * ``'gram'`` never builds them. With unit-column node matrices
      P (C_T x M) and Q (C_S x M),
      ``||P^T P - Q^T Q||_F^2 = ||P P^T||_F^2 - 2 ||P Q^T||_F^2
      + ||Q Q^T||_F^2``: O(C^2 M) time, O(C^2) extra memory, in forward and
      in backward. Sums are accumulated in float64 and the nodes' common
      direction is split off first, so the three large terms do not cancel
      the result away (see :class:`_GramAffinityDistance`): for float32
      input the value stays within ~1e-5 (relative) of a float64 naive
      computation even when the affinities nearly agree.

    ``'auto'`` picks the cheaper of the two, i.e. ``'direct'`` only for a few
    nodes (pooled maps), where it also avoids the cancellation of the
    three-term sum.

    The teacher gets no gradient.

    Args:
        nodes_S: student nodes, shape (N, C_S, M).
        nodes_T: teacher nodes, shape (N, C_T, M).
        method: ``'auto'``, ``'direct'`` or ``'gram'``.
        eps: lower bound on a node's norm before dividing by it.
        chunk_size: nodes per step of the ``'gram'`` loop; by default
            about ``CHUNK_ELEMENTS / (N * max(C_S, C_T))``.

    Returns:
        Scalar tensor.
    """
    nodes_T = nodes_T.detach()
    _, channels_S, num_nodes = nodes_S.shape
    channels_T = nodes_T.shape[1]
    if method == 'auto':
        direct_cost = num_nodes * (channels_S + channels_T)
        gram_cost = (channels_S * channels_S + channels_S * channels_T +
                     channels_T * channels_T)
        method = 'direct' if direct_cost <= gram_cost else 'gram'
    if method == 'direct':
        unit_S = F.normalize(nodes_S, dim=1, eps=eps)
        unit_T = F.normalize(nodes_T, dim=1, eps=eps)
        affinity_S = unit_S.transpose(1, 2) @ unit_S
        affinity_T = unit_T.transpose(1, 2) @ unit_T
        return (affinity_T - affinity_S).square().mean()
    if method == 'gram':
        if chunk_size is None:
            chunk_size = max(
                MIN_CHUNK_SIZE,
                CHUNK_ELEMENTS // (nodes_S.shape[0] *
                                   max(channels_S, channels_T)))
        if chunk_size < 1:
            raise ValueError(f'{LOSS_NAME}: chunk_size must be >= 1, got '
                             f'{chunk_size}.')
        return _GramAffinityDistance.apply(nodes_S, nodes_T, eps,
                                           int(chunk_size))
    raise ValueError(f"{LOSS_NAME}: method must be 'auto', 'direct' or "
                     f"'gram', got {method!r}.")


def _mean_direction(nodes: Tensor, inv_norms: Tensor) -> Tensor:
    """Unit vector along the sum of the unit nodes, (N, C, 1); 0 if that is
    0."""
    total = torch.bmm(nodes, inv_norms.unsqueeze(-1))
    norm = torch.linalg.vector_norm(total, dim=1, keepdim=True)
    return total / norm.clamp_min(torch.finfo(total.dtype).tiny)


def _split_nodes(nodes: Tensor, inv_norms: Tensor, direction: Tensor,
                 cols: slice) -> Tuple[Tensor, Tensor]:
    """Split the unit nodes of a chunk along ``direction`` (N, C, 1).

    Returns their components along it (N, 1, k) and the remainders
    ``unit - direction along`` (N, C, k).
    """
    unit = nodes[..., cols] * inv_norms[:, None, cols]
    along = torch.bmm(direction.transpose(1, 2), unit)
    return along, unit.baddbmm_(direction, along, alpha=-1)


class _GramAffinityDistance(torch.autograd.Function):
    """``affinity_distance`` through the Gram identity, in bounded memory.

    With unit-node matrices P (teacher, C_T x M) and Q (student, C_S x M),
    the loss is ``||D||_F^2 / (N M^2)`` with ``D = P^T P - Q^T Q``.

    Guarding the cancellation: the three Gram terms are each of the order of
    ``||A||_F^2``, which is far larger than the loss when the affinities
    are close, and more so when the features share a dominant direction
    (ReLU features: every cosine is near 1). So each node is first split
    along the unit mean direction u of its network's nodes:
    ``p_i = u a_i + p_perp_i`` (likewise q_i = w b_i + q_perp_i), which is
    exact for any unit u, w. Then ``D = E + F`` with
    ``E = a a^T - b b^T = (d s^T + s d^T) / 2`` (d = a - b, s = a + b) and
    ``F = P_perp^T P_perp - Q_perp^T Q_perp``, and

        ||D||^2 = (|d|^2 |s|^2 + (d.s)^2) / 2
                  + 2 ((P_perp d).(P_perp s) - (Q_perp d).(Q_perp s))
                  + ||P_perp P_perp^T||^2 - 2 ||P_perp Q_perp^T||^2
                  + ||Q_perp Q_perp^T||^2,

    where the Gram identity now runs on the remainders, whose Grams are much
    smaller, and the first two lines have no large cancelling terms.

    Forward walks over the nodes in chunks: normalise and split the chunk,
    add its Grams (float32 GEMMs for float32 input) and vectors to float64
    accumulators. Backward walks the chunks again, using
    ``dL/dQ = -4 / (N M^2) * Q D`` with
    ``Q D[:, c] = ((Q d) s_c^T + (Q s) d_c^T) / 2 + Q_perp P_perp^T
    P_perp_c - Q_perp Q_perp^T Q_perp_c + w ((P_perp b)^T P_perp_c -
    (Q_perp b)^T Q_perp_c)`` and ``Q x = w (b.x) + Q_perp x``, then through
    the normalisation. Neither pass holds an M x M matrix, a float64 copy
    or a normalised copy of a whole input: the only full-size tensor created
    is the student's gradient. Time O((C_S + C_T)^2 M), extra memory
    O((C_S + C_T)^2 + C chunk_size). Float64 inputs stay float64.
    """

    @staticmethod
    def forward(ctx, nodes_S: Tensor, nodes_T: Tensor, eps: float,
                chunk_size: int) -> Tensor:
        batch, channels_S, num_nodes = nodes_S.shape
        channels_T = nodes_T.shape[1]
        norms_S = torch.linalg.vector_norm(nodes_S, dim=1)
        inv_S = norms_S.clamp_min(eps).reciprocal()
        inv_T = torch.linalg.vector_norm(nodes_T, dim=1).clamp_min(
            eps).reciprocal()
        dir_S = _mean_direction(nodes_S, inv_S)
        dir_T = _mean_direction(nodes_T, inv_T)

        def zeros(*shape):
            return torch.zeros(
                batch, *shape, dtype=torch.float64, device=nodes_S.device)

        gram_TT = zeros(channels_T, channels_T)
        gram_TS = zeros(channels_T, channels_S)
        gram_SS = zeros(channels_S, channels_S)
        # Columns: the remainders times d and times s.
        perp_T_ds, perp_S_ds = zeros(channels_T, 2), zeros(channels_S, 2)
        # Rows: d.d, s.s, d.s, b.d, b.s.
        sums = zeros(5)
        for start in range(0, num_nodes, chunk_size):
            cols = slice(start, start + chunk_size)
            along_S, perp_S = _split_nodes(nodes_S, inv_S, dir_S, cols)
            along_T, perp_T = _split_nodes(nodes_T, inv_T, dir_T, cols)
            diff_sum = torch.cat([along_T - along_S, along_T + along_S], 1)
            gram_TT += torch.bmm(perp_T, perp_T.transpose(1, 2))
            gram_TS += torch.bmm(perp_T, perp_S.transpose(1, 2))
            gram_SS += torch.bmm(perp_S, perp_S.transpose(1, 2))
            perp_T_ds += torch.bmm(perp_T, diff_sum.transpose(1, 2))
            perp_S_ds += torch.bmm(perp_S, diff_sum.transpose(1, 2))
            diff, sum_ = diff_sum.double().unbind(1)
            along_S = along_S.squeeze(1).double()
            sums += torch.stack([
                diff.square().sum(-1), sum_.square().sum(-1),
                (diff * sum_).sum(-1), (along_S * diff).sum(-1),
                (along_S * sum_).sum(-1)
            ], -1)
        diff_sq, sum_sq, diff_dot_sum, along_S_diff, along_S_sum = sums.T
        along_term = (diff_sq * sum_sq + diff_dot_sum.square()) / 2
        cross_term = (perp_T_ds.prod(-1).sum(-1) -
                      perp_S_ds.prod(-1).sum(-1))
        gram_term = (gram_TT.square().sum((1, 2)) -
                     2 * gram_TS.square().sum((1, 2)) +
                     gram_SS.square().sum((1, 2)))
        total = (along_term + 2 * cross_term + gram_term).sum()
        # Rounding can leave a tiny negative number for identical inputs.
        loss = total.clamp_min(0) / (batch * num_nodes * num_nodes)

        # What backward needs, already in the form it uses: Q d and Q s
        # (halved), and the remainders times b = (s - d) / 2.
        dir_S64 = dir_S.double()
        unit_S_ds = (dir_S64 * torch.stack([along_S_diff, along_S_sum], -1)
                     [:, None] + perp_S_ds) / 2
        perp_T_along_S = (perp_T_ds[..., 1] - perp_T_ds[..., 0]) / 2
        perp_S_along_S = (perp_S_ds[..., 1] - perp_S_ds[..., 0]) / 2
        ctx.save_for_backward(nodes_S, nodes_T, norms_S, inv_S, inv_T, dir_S,
                              dir_T, gram_TS, gram_SS, unit_S_ds,
                              perp_T_along_S, perp_S_along_S)
        ctx.eps = eps
        ctx.chunk_size = chunk_size
        return loss.to(nodes_S.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss: Tensor):
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        (nodes_S, nodes_T, norms_S, inv_S, inv_T, dir_S, dir_T, gram_TS,
         gram_SS, unit_S_ds, perp_T_along_S,
         perp_S_along_S) = ctx.saved_tensors
        batch, _, num_nodes = nodes_S.shape
        dtype = nodes_S.dtype
        # The loss gradient's scale, folded into the small matrices so the
        # chunk loop does not spend a pass over the data on it.
        coeff = grad_loss.double() * -4 / (batch * num_nodes * num_nodes)
        gram_ST = (coeff * gram_TS.transpose(1, 2)).to(dtype)
        neg_gram_SS = (-coeff * gram_SS).to(dtype)
        # Rank-3 term: [Qd/2, Qs/2, w] (N, C_S, 3) @ [s; d; r] (N, 3, k).
        low_rank = coeff * torch.cat([unit_S_ds, dir_S.double()], -1)
        low_rank = low_rank.to(dtype)
        perp_T_along_S = perp_T_along_S.unsqueeze(1).to(dtype)
        neg_perp_S_along_S = -perp_S_along_S.unsqueeze(1).to(dtype)
        # The projection of x / ||x|| only applies where the norm was not
        # clamped to eps; there the denominator is a constant.
        unclamped = (norms_S > ctx.eps).to(dtype)
        grad_S = torch.empty_like(nodes_S)
        for start in range(0, num_nodes, ctx.chunk_size):
            cols = slice(start, start + ctx.chunk_size)
            along_S, perp_S = _split_nodes(nodes_S, inv_S, dir_S, cols)
            along_T, perp_T = _split_nodes(nodes_T, inv_T, dir_T, cols)
            # r = (P_perp b)^T P_perp_c - (Q_perp b)^T Q_perp_c
            along_r = torch.bmm(perp_T_along_S, perp_T).baddbmm_(
                neg_perp_S_along_S, perp_S)
            sum_diff_r = torch.cat(
                [along_T + along_S, along_T - along_S, along_r], 1)
            grad_unit = torch.bmm(gram_ST, perp_T)
            del perp_T  # Peak memory: at most three chunks alive.
            grad_unit.baddbmm_(neg_gram_SS, perp_S)
            grad_unit.baddbmm_(low_rank, sum_diff_r)
            # Through q = x / ||x||: subtract the radial part q (q.g), with
            # q = w b + q_perp, so the unit nodes need no buffer of their own.
            radial = (perp_S * grad_unit).sum(1, keepdim=True)
            radial.addcmul_(along_S, torch.bmm(dir_S.transpose(1, 2),
                                               grad_unit))
            radial.mul_(unclamped[:, None, cols])
            grad_unit.addcmul_(perp_S, radial, value=-1)
            grad_unit.baddbmm_(dir_S, along_S * radial, alpha=-1)
            torch.mul(grad_unit, inv_S[:, None, cols],
                      out=grad_S[..., cols])
        return grad_S, None, None, None


@float32_math
def pair_wise_loss(preds_S: Tensor,
                   preds_T: Tensor,
                   scale: Optional[float] = 0.5,
                   pool: str = 'max') -> Tensor:
    """Pair-wise distillation loss of SKD on one feature map.

    ``L_pa = mean_{n,i,j} (A_T[i, j] - A_S[i, j])^2`` with
    ``A[i, j] = <x_i, x_j>`` over the L2-normalised nodes x of
    :func:`pool_nodes` (``scale=None``: every position is a node, computed
    without M x M matrices). Runs in float32 (float64 accumulation for the
    full-resolution Grams) even under autocast.

    Args:
        preds_S: student feature map, shape (N, C_S, H, W).
        preds_T: teacher feature map, shape (N, C_T, H, W); no gradient.
        scale: node size as a fraction of the map, in (0, 1], or ``None``.
        pool: ``'max'`` (official) or ``'avg'``.

    Returns:
        Scalar tensor.

    Example:
        >>> feats_S = torch.randn(2, 64, 33, 45, requires_grad=True)
        >>> feats_T = torch.randn(2, 256, 33, 45)
        >>> pair_wise_loss(feats_S, feats_T, scale=None).backward()
    """
    check_map_pair(
        LOSS_NAME, preds_S, preds_T,
        hint='Channel counts may differ, but the maps must cover the same '
        'positions: record both at stages of the same stride, or resize one '
        'map (e.g. F.interpolate) before the loss.')
    nodes_S = pool_nodes(preds_S, scale, pool).flatten(2)
    nodes_T = pool_nodes(preds_T.detach(), scale, pool).flatten(2)
    return affinity_distance(nodes_S, nodes_T)


def _check_options(scale: Optional[float], pool: str) -> None:
    if scale is not None and not 0 < scale <= 1:
        raise ValueError(f'{LOSS_NAME}: scale must be in (0, 1] or None '
                         f'(full resolution), got {scale}.')
    if pool not in POOL_MODES:
        raise ValueError(f'{LOSS_NAME}: pool must be one of {POOL_MODES}, '
                         f'got {pool!r}.')


@MODELS.register_module()
class PairWiseLoss(LevelSumLoss):
    """Pair-wise (affinity) distillation loss of SKD.

    See :func:`pair_wise_loss`. Given a tuple of feature-pyramid levels (the
    detection setting: pair-wise on every FPN level), the result is the
    weighted sum over levels.

    Args:
        scale: node size as a fraction of the map, in (0, 1]; ``None`` for
            full resolution (every position a node). Default 0.5 (official).
        pool: ``'max'`` (official) or ``'avg'`` pooling into nodes.
        loss_weight: multiplier of the loss (official script: 0.5).
        level_weights: one weight per pyramid level; all 1 when None.
    """

    LOSS_NAME = LOSS_NAME

    def __init__(self,
                 scale: Optional[float] = 0.5,
                 pool: str = 'max',
                 loss_weight: float = 1.0,
                 level_weights: Optional[Sequence[float]] = None) -> None:
        super().__init__(loss_weight, level_weights)
        _check_options(scale, pool)
        self.scale = scale
        self.pool = pool

    def level_loss(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        return pair_wise_loss(preds_S, preds_T, self.scale, self.pool)
