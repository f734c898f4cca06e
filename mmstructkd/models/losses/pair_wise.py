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
  (M = 32768, 64 MB per input) needs ~150 MB beyond its inputs (the
  student's gradient, formed during the forward, and its scaled copy, 64 MB
  each, and one 16 MB stacked chunk; see tools/benchmark_losses.py for
  measured peaks) where the naive version would need several 4.3 GB
  matrices.
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
# the stacked chunk of both maps (about twice that) stays far below the size
# of a large input.
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
      + ||Q Q^T||_F^2``: O(C^2 M) time and O(C^2 + C chunk_size) extra
      memory, all in the forward, which also forms the student's gradient
      (the backward only scales it; not twice differentiable). Sums are
      accumulated in float64 and the nodes' common direction is split off
      first, so the three large terms do not cancel
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


def _channel_sums(maps: Tensor, ones: Tensor) -> Tensor:
    """Sum over the channels of (N, C, k) maps, (N, 1, k), as a product with
    ``ones`` (N, 1, C): faster on CPU than a reduction along a dimension
    that is not the innermost one."""
    return torch.bmm(ones, maps)


def _mean_direction(nodes: Tensor, inv_norms: Tensor) -> Tensor:
    """Unit vector along the sum of the unit nodes, (N, C, 1); 0 if that is
    0."""
    total = torch.bmm(nodes, inv_norms.unsqueeze(-1))
    norm = torch.linalg.vector_norm(total, dim=1, keepdim=True)
    return total / norm.clamp_min(torch.finfo(total.dtype).tiny)


def _split_into(out: Tensor, nodes: Tensor, inv_norms: Tensor,
                direction: Tensor) -> Tensor:
    """Write the remainders ``unit - direction along`` of a chunk of unit
    nodes into ``out`` (N, C, k); return their components along
    ``direction`` (N, 1, k)."""
    torch.mul(nodes, inv_norms.unsqueeze(1), out=out)
    along = torch.bmm(direction.transpose(1, 2), out)
    out.baddbmm_(direction, along, alpha=-1)
    return along


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

    The loss is a scalar, so its gradient depends on the inputs only and is
    formed in the forward; the backward only scales it. It is
    ``dL/dQ = -4 / (N M^2) * Q D``, with, for node c,
    ``Q D[:, c] = G_SP P_perp_c - G_SS Q_perp_c + (Q s) d_c / 2
    + (Q d) s_c / 2 + w r_c`` (``G_SP = Q_perp P_perp^T``,
    ``G_SS = Q_perp Q_perp^T``, ``Q x = w (b.x) + Q_perp x`` and
    ``r_c = (P_perp b).P_perp_c - (Q_perp b).Q_perp_c``), then through the
    normalisation ``q = x / ||x||``.

    Few, large operations (each a thread barrier when several threads run
    on a loaded machine): per chunk of nodes the remainders and d, s are
    written as rows of one stacked matrix ``X = [P_perp; Q_perp; d; s; r]``,
    whose Grams come from one product ``X X^T`` (without the r row), and
    whose gradient share is one more product
    ``W X`` with ``W = -4 / (N M^2) [G_SP, -G_SS, Q s / 2, Q d / 2, w]``.
    When all nodes fit one chunk, X is built once; otherwise a second walk
    over the chunks rebuilds each chunk's rows. Grams are accumulated in
    float64. No M x M matrix, float64 copy or normalised copy of a whole
    input is made: the full-size tensors are the student's gradient and,
    per chunk, X. Time O((C_S + C_T)^2 M), extra memory
    O((C_S + C_T)^2 + (C_S + C_T) chunk_size). Float64 inputs stay float64.
    """

    @staticmethod
    def forward(ctx, nodes_S: Tensor, nodes_T: Tensor, eps: float,
                chunk_size: int) -> Tensor:
        pass_ = _GramPass(nodes_S, nodes_T, eps, chunk_size)
        loss = pass_.loss()
        grad_S = pass_.gradient() if ctx.needs_input_grad[0] else None
        ctx.save_for_backward(grad_S)
        return loss.to(nodes_S.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss: Tensor):
        (grad_S, ) = ctx.saved_tensors
        if grad_S is None:
            return None, None, None, None
        return grad_S * grad_loss, None, None, None


class _GramPass:
    """The computation of :class:`_GramAffinityDistance` (its doc has the
    formulas): the Grams and loss, then the student's gradient.

    One scratch buffer of ``N x (C_T + C_S + 3) x chunk`` holds the stacked
    rows ``X = [P_perp; Q_perp; d; s; r]`` of the current chunk and serves
    as scratch for the node norms and the normalisation's radial term, so
    no other chunk-sized tensor is allocated (each fresh allocation of that
    size costs page faults on CPU).
    """

    def __init__(self, nodes_S: Tensor, nodes_T: Tensor, eps: float,
                 chunk_size: int) -> None:
        self.nodes_S, self.nodes_T, self.eps = nodes_S, nodes_T, eps
        batch, channels_S, num_nodes = nodes_S.shape
        channels_T = nodes_T.shape[1]
        self.rows_T = slice(0, channels_T)
        self.rows_S = slice(channels_T, channels_T + channels_S)
        self.row_d = channels_T + channels_S
        self.row_r = self.row_d + 2
        self.chunks = [slice(start, min(start + chunk_size, num_nodes))
                       for start in range(0, num_nodes, chunk_size)]
        self.buffer = nodes_S.new_empty(batch, self.row_r + 1,
                                        min(chunk_size, num_nodes))
        self.ones = nodes_S.new_ones(batch, 1, max(channels_S, channels_T))
        # Squared norms, chunk by chunk through the scratch buffer.
        squares_S = nodes_S.new_empty(batch, num_nodes)
        squares_T = nodes_S.new_empty(batch, num_nodes)
        for cols in self.chunks:
            for nodes, rows, squares in ((nodes_S, self.rows_S, squares_S),
                                         (nodes_T, self.rows_T, squares_T)):
                scratch = self._rows(rows, cols)
                torch.mul(nodes[..., cols], nodes[..., cols], out=scratch)
                squares[:, cols] = _channel_sums(
                    scratch, self.ones[..., :scratch.shape[1]])[:, 0]
        self.norms_S = squares_S.sqrt_()
        self.inv_S = self.norms_S.clamp_min(eps).reciprocal()
        self.inv_T = squares_T.sqrt_().clamp_min_(eps).reciprocal_()
        self.dir_S = _mean_direction(nodes_S, self.inv_S)
        self.dir_T = _mean_direction(nodes_T, self.inv_T)
        self.built = None  # the chunk whose rows the buffer holds

    def _rows(self, rows: slice, cols: slice) -> Tensor:
        """The buffer's ``rows`` for the chunk ``cols`` (a view)."""
        return self.buffer[:, rows, :cols.stop - cols.start]

    def _build(self, cols: slice) -> Tensor:
        """Fill X of the chunk (all but its r row); return X."""
        if self.built != cols:
            along_T = _split_into(self._rows(self.rows_T, cols),
                                  self.nodes_T[..., cols],
                                  self.inv_T[:, cols], self.dir_T)
            along_S = _split_into(self._rows(self.rows_S, cols),
                                  self.nodes_S[..., cols],
                                  self.inv_S[:, cols], self.dir_S)
            row_d = self.row_d
            torch.sub(along_T, along_S,
                      out=self._rows(slice(row_d, row_d + 1), cols))
            torch.add(along_T, along_S,
                      out=self._rows(slice(row_d + 1, row_d + 2), cols))
            self.built = cols
        return self._rows(slice(None), cols)

    def loss(self) -> Tensor:
        """The loss (float64), after accumulating the Grams."""
        channels_T = self.rows_T.stop
        channels_S = self.rows_S.stop - channels_T
        row_r = self.row_r
        gram = None
        for cols in self.chunks:
            stacked = self._build(cols)
            # Every Gram the loss needs from one product. It also computes
            # the S-T block twice (a third more multiply-adds than the
            # blocks alone) but forms T-T, T-S and S-S alike, so that
            # identical maps give exactly zero.
            rows = stacked[:, :row_r]
            part = torch.bmm(rows, rows.transpose(1, 2))
            if gram is None:
                gram = part.double()
            else:
                gram += part
        # Teacher rows against all rows; student rows (then d and s)
        # against the student rows, d and s.
        gram_T = gram[:, self.rows_T]
        gram_S = gram[:, channels_T:, channels_T:]
        self.gram_T, self.gram_S = gram_T, gram_S
        # In gram_S, the student rows come first, then d and s.
        sd, ss = channels_S, channels_S + 1
        row_d = self.row_d
        perp_T_d, perp_T_s = gram_T[:, :, row_d], gram_T[:, :, row_d + 1]
        perp_S_d, perp_S_s = gram_S[:, :sd, sd], gram_S[:, :sd, ss]
        diff_sq, sum_sq = gram_S[:, sd, sd], gram_S[:, ss, ss]
        diff_dot_sum = gram_S[:, sd, ss]
        along_term = (diff_sq * sum_sq + diff_dot_sum.square()) / 2
        cross_term = ((perp_T_d * perp_T_s).sum(-1) -
                      (perp_S_d * perp_S_s).sum(-1))
        gram_term = (gram_T[:, :, self.rows_T].square().sum((1, 2)) -
                     2 * gram_T[:, :, self.rows_S].square().sum((1, 2)) +
                     gram_S[:, :sd, :sd].square().sum((1, 2)))
        total = (along_term + 2 * cross_term + gram_term).sum()
        # Rounding can leave a tiny negative number for identical inputs.
        return total.clamp_min(0) / self._norm()

    def _norm(self) -> int:
        batch, _, num_nodes = self.nodes_S.shape
        return batch * num_nodes * num_nodes

    def gradient(self) -> Tensor:
        """The student's gradient of the loss, from the Grams."""
        gram_T, gram_S = self.gram_T, self.gram_S
        nodes_S, dtype = self.nodes_S, self.nodes_S.dtype
        channels_T = self.rows_T.stop
        channels_S = self.rows_S.stop - channels_T
        row_d, row_r = self.row_d, self.row_r
        sd, ss = channels_S, channels_S + 1
        coeff = -4 / self._norm()
        # b = (s - d) / 2, so Q_perp b, P_perp b, b.d and b.s come from the
        # Grams with d and s.
        perp_S_b = (gram_S[:, :sd, ss] - gram_S[:, :sd, sd]) / 2
        perp_T_b = (gram_T[:, :, row_d + 1] - gram_T[:, :, row_d]) / 2
        along_S_d = (gram_S[:, ss, sd] - gram_S[:, sd, sd]) / 2
        along_S_s = (gram_S[:, ss, ss] - gram_S[:, sd, ss]) / 2
        dir_S = self.dir_S.double()[..., 0]
        # W = coeff [G_SP, -G_SS, Q s / 2, Q d / 2, w]: its columns meet
        # the rows P_perp, Q_perp, d, s, r of X.
        weights = gram_T.new_empty(nodes_S.shape[0], channels_S, row_r + 1)
        torch.mul(gram_T[:, :, self.rows_S].transpose(1, 2), coeff,
                  out=weights[..., self.rows_T])
        torch.mul(gram_S[:, :sd, :sd], -coeff, out=weights[..., self.rows_S])
        weights[..., row_d] = coeff / 2 * (
            dir_S * along_S_s[:, None] + gram_S[:, :sd, ss])
        weights[..., row_d + 1] = coeff / 2 * (
            dir_S * along_S_d[:, None] + gram_S[:, :sd, sd])
        weights[..., row_r] = coeff * dir_S
        weights = weights.to(dtype)
        # r = [P_perp b; -Q_perp b]^T [P_perp; Q_perp], one row per chunk.
        r_weights = torch.cat([perp_T_b, -perp_S_b], -1).unsqueeze(1)
        r_weights = r_weights.to(dtype)
        # The projection of x / ||x|| only applies where the norm was not
        # clamped to eps; there the denominator is a constant.
        radial_scale = torch.where(self.norms_S > self.eps,
                                   self.inv_S.pow(3), 0).unsqueeze(1)
        grad_S = torch.empty_like(nodes_S)
        single = len(self.chunks) == 1
        for cols in self.chunks:
            stacked = self._build(cols)
            stacked[:, row_r:] = torch.bmm(r_weights, stacked[:, :row_d])
            if single:
                grad_unit = torch.bmm(weights, stacked, out=grad_S)
            else:
                grad_unit = torch.bmm(weights, stacked)
            self.built = None  # the buffer becomes scratch
            # Through q = x / ||x||: g / ||x|| - x (x.g) / ||x||^3.
            nodes = nodes_S[..., cols]
            scratch = self._rows(self.rows_S, cols)
            torch.mul(nodes, grad_unit, out=scratch)
            radial = _channel_sums(scratch, self.ones[..., :channels_S])
            radial.mul_(radial_scale[..., cols])
            out = grad_S[..., cols]
            torch.mul(grad_unit, self.inv_S[:, None, cols], out=out)
            out.addcmul_(nodes, radial, value=-1)
        return grad_S


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
