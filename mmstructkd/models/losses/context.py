"""Context distillation: the context half of BCD.

BCD: D. Zhang, P. Dong, X. Hu, L. Chen, K.-T. Cheng, *Towards Complementary
Knowledge Distillation for Efficient Dense Image Prediction*,
arXiv:2401.13174, 2024 (published as BCKD in TMLR, 2026). It transfers
implicit pixel-level context through self-relations: each network's
pixel-to-pixel relation matrix, rows normalised, is matched between teacher
and student. The paper's equations were not available; this is the
reconstruction used here. For features ``x_S`` (N, C_S, H, W) and ``x_T``
(N, C_T, H, W), per image, with ``M = H * W`` positions and unit feature
vectors ``u_i = x_i / ||x_i||`` (over channels)::

    R[i, j] = softmax_j(<u_i, u_j> / tau)              (M x M, rows sum to 1)
    L_ctx   = mean_{n, i} sum_j R_T[i, j] (log R_T[i, j] - log R_S[i, j])

i.e. ``KL(R_T[i] || R_S[i])`` averaged over the rows ``i`` and the images.

* Cosine similarity makes ``R`` independent of the feature scale and of the
  channel count, so teacher and student need not have the same channels
  (zero-padding the teacher's channels leaves the loss unchanged); they need
  the same ``H x W`` (resize one, or pool both with ``pool``).
* Each row is a distribution of "where is my context" over the image; the
  KL goes from the teacher's row to the student's (the usual distillation
  direction, as in the pixel-wise and channel-wise losses): the student is
  pushed hardest where the teacher puts relation mass, i.e. it must find
  the teacher's related positions; mass it puts where the teacher has
  almost none costs only indirectly (it is missing elsewhere).
* ``tau`` is the temperature of the similarity, not a logit-softening
  temperature, so the loss is not multiplied by ``tau^2``. Cosines lie in
  ``[-1, 1]``; with ``tau = 1`` every row would be within a factor ``e^2``
  of uniform over the ``M`` positions and carry little signal, hence the
  default ``tau = 0.1``. The diagonal (``<u_i, u_i> = 1``) is kept, not
  masked: its logit is ``1 / tau`` in both matrices, so it adds no
  difference of its own, and it bounds how peaked a row can be.

Memory and time. For a 1024 x 2048 frame at 1/8 resolution ``M = 32768``
and one ``M x M`` float32 matrix is 4.3 GB, and autograd would keep several.
:func:`context_relation_kl` therefore works on blocks of relation rows
(at most ``chunk_size`` rows, about ``BLOCK_ELEMENTS`` entries) with a
custom autograd function that forms the student's gradient block by block
during the forward: it runs as many matrix products as the naive
computation (two relations and two gradient products per block), so it is
not slower, and keeps nothing of size M x M.
:func:`context_relation_kl_naive` materialises the full matrices and exists
for tests and benchmarks; :func:`relation_kl_rows` is the per-row formula
by plain autograd, on any block of rows (the naive loss and the
visualisation use it).
"""
from typing import Iterator, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from mmstructkd.registry import MODELS
from .utils import LevelSumLoss, check_map_pair, check_ndim, float32_math

LOSS_NAME = 'ContextLoss'
SPATIAL_HINT = ('The relation matrices are M x M with M = H * W, so both maps '
                'need the same H x W: resize one of them (e.g. a connector '
                'that interpolates) or set pool=(h, w) in ContextLoss to '
                'average-pool both to a common size.')
# Relation entries (rows x M) of one block: 4M float32 entries are 16 MB per
# block buffer (four at most alive). Blocks of a few hundred rows keep the
# matrix products near full BLAS speed (measured at M = 8192, C = 256:
# 256 to 1024 rows beat 128 and 4096); larger blocks only add memory
# traffic.
BLOCK_ELEMENTS = 2**22


def unit_positions(preds_S: Tensor,
                   preds_T: Tensor) -> Tuple[Tensor, Tensor]:
    """Unit feature vectors of every position, after checking the shapes.

    ``u[n, i] = x[n, :, i] / ||x[n, :, i]||`` over the channels, the
    positions ``i`` of the H x W map flattened row-major (``M = H * W``).
    The teacher's are detached.

    Args:
        preds_S: student features (N, C_S, H, W).
        preds_T: teacher features (N, C_T, H, W), same N, H, W.

    Returns:
        ``(unit_S, unit_T)`` of shapes (N, M, C_S) and (N, M, C_T),
        contiguous.
    """
    check_map_pair(LOSS_NAME, preds_S, preds_T, hint=SPATIAL_HINT)
    # The teacher never receives gradients, whatever the caller passes.
    unit_S = F.normalize(preds_S.flatten(2), dim=1).transpose(1, 2)
    unit_T = F.normalize(preds_T.detach().flatten(2), dim=1).transpose(1, 2)
    return unit_S.contiguous(), unit_T.contiguous()


def _check_tau(tau: float) -> None:
    if tau <= 0:
        raise ValueError(f'{LOSS_NAME}: tau must be > 0, got {tau}.')


@float32_math
def context_relation_kl_naive(preds_S: Tensor,
                              preds_T: Tensor,
                              tau: float = 0.1) -> Tensor:
    """Context relation KL, materialising the full M x M matrices.

    Same value as :func:`context_relation_kl` (formula in the module doc);
    memory grows as ``N * M^2``, so use it for small maps, tests and
    benchmarks only.

    Args:
        preds_S: student features (N, C_S, H, W).
        preds_T: teacher features (N, C_T, H, W).
        tau: temperature of the cosine similarities.

    Returns:
        Tensor: scalar loss.
    """
    _check_tau(tau)
    return relation_kl_rows(*unit_positions(preds_S, preds_T), tau).mean()


def _row_blocks(num_images: int, num_positions: int,
                chunk_size: int) -> Iterator[Tuple[slice, slice]]:
    """Yield (images, rows) blocks of at most ``chunk_size`` rows in all.

    Small maps (``M <= chunk_size``) are batched several images at a time,
    large ones are split into row chunks of one image.
    """
    if num_positions <= chunk_size:
        step = chunk_size // num_positions
        for start in range(0, num_images, step):
            yield slice(start, start + step), slice(0, num_positions)
        return
    for image in range(num_images):
        for start in range(0, num_positions, chunk_size):
            yield slice(image, image + 1), slice(start, start + chunk_size)


def _block_logits(unit: Tensor, images: slice, rows: slice,
                  tau: float) -> Tensor:
    """Scaled similarities ``<u_i, u_j> / tau`` of a row block, (n, r, M)."""
    # Dividing the few block rows (not the r x M product) saves a pass.
    return torch.bmm(unit[images, rows] / tau, unit[images].transpose(1, 2))


def relation_kl_rows(unit_S: Tensor,
                     unit_T: Tensor,
                     tau: float = 0.1,
                     images: slice = slice(None),
                     rows: slice = slice(None)) -> Tensor:
    """``KL(R_T[i] || R_S[i])`` of a block of relation rows, by autograd.

    ``R[i, j] = softmax_j(<u_i, u_j> / tau)`` over all M positions ``j``;
    one divergence ``sum_j R_T[i, j] (log R_T[i, j] - log R_S[i, j])`` per
    image and row ``i`` of the block. Their mean over all rows and images is
    the context loss. The block's ``r x M`` relations are materialised
    (several buffers of that size for autograd); :func:`context_relation_kl`
    computes the same sum in bounded memory.

    Args:
        unit_S: student unit position vectors (N, M, C_S), see
            :func:`unit_positions`.
        unit_T: teacher unit position vectors (N, M, C_T).
        tau: temperature of the cosine similarities.
        images: the images of the block (default all).
        rows: the rows ``i`` (positions) of the block (default all).

    Returns:
        Tensor of shape (n, r): the block's images and rows; (N, M) by
        default.
    """
    log_R_S = F.log_softmax(_block_logits(unit_S, images, rows, tau), dim=-1)
    log_R_T = F.log_softmax(_block_logits(unit_T, images, rows, tau), dim=-1)
    return (log_R_T.exp() * (log_R_T - log_R_S)).sum(dim=-1)


def block_rows(num_positions: int, chunk_size: int) -> int:
    """Rows per block: at most ``chunk_size``, and about ``BLOCK_ELEMENTS``
    relation entries (rows x M), rounded down to a multiple of 64 rows."""
    rows = BLOCK_ELEMENTS // num_positions
    if rows > 64:
        rows -= rows % 64
    return max(1, min(chunk_size, rows))


def _log_diagonal(probs: Tensor, start: int) -> Tensor:
    """``log R[i, i]`` of a block's rows ``i = start, start + 1, ...``."""
    return probs.diagonal(offset=start, dim1=1, dim2=2).log()


def _log_normalisers(logits: Tensor, probs: Tensor, start: int) -> Tensor:
    """``log sum_j exp(z[i, j])`` of each row ``i`` of a block, (n, r).

    Read off the diagonal, ``log Z_i = z[i, i] - log R[i, i]``, instead of
    another pass over the block: for unit (or zero) vectors the diagonal
    ``<u_i, u_i> / tau`` is the row's largest logit (Cauchy-Schwarz), so
    ``R[i, i] >= 1 / M`` does not underflow. Rows where it still does (a
    vector shorter than 1 with a tiny ``tau``) take the direct route.
    """
    log_diagonal = _log_diagonal(probs, start)
    log_norm = logits.diagonal(offset=start, dim1=1, dim2=2) - log_diagonal
    if not torch.isfinite(log_diagonal).all():
        log_norm = torch.logsumexp(logits, dim=-1)
    return log_norm


class _FusedRelationKL(torch.autograd.Function):
    """Relation KL over row blocks, its gradient formed in the forward.

    Inputs are the unit position vectors (N, M, C_S) and (N, M, C_T). The
    loss is a scalar, so its gradient depends on the inputs only: each block
    of relation rows is built once, and while it is in memory gives both
    its share of the loss and its share of the student's gradient. For a
    row ``i`` with logits ``z[i, :] = <u_i, u_:> / tau``::

        KL_i = sum_j R_T[i, j] (z_T[i, j] - z_S[i, j])
               - (log Z_T[i] - log Z_S[i])
        dKL_i / dz_S[i, :] = R_S[i] - R_T[i] =: G[i]

    (``log Z`` the row's log-normaliser, :func:`_log_normalisers`), and
    ``z = U U^T / tau`` gives ``dU[rows] += G U / tau`` and
    ``dU += G^T U[rows] / tau`` for a block ``G``: four matrix products
    per block in all (two relations, two gradient products), as many as
    the naive M x M computation, and one softmax per relation. The backward
    only scales the kept gradient (N x M x C_S, the size of the student's
    input): nothing of size M x M lives between forward and backward, and
    at most four block buffers at once within the forward.
    """

    @staticmethod
    def forward(ctx, unit_S: Tensor, unit_T: Tensor, tau: float,
                chunk_size: int) -> Tensor:
        need_grad = ctx.needs_input_grad[0]
        num_images, num_positions = unit_S.shape[:2]
        grad_S = torch.zeros_like(unit_S) if need_grad else None
        total = unit_S.new_zeros((), dtype=torch.float64)
        rows_per_block = block_rows(num_positions, chunk_size)
        for images, rows in _row_blocks(num_images, num_positions,
                                        rows_per_block):
            start = rows.start
            logits_S = _block_logits(unit_S, images, rows, tau)
            logits_T = _block_logits(unit_T, images, rows, tau)
            probs_S = torch.softmax(logits_S, dim=-1)
            probs_T = torch.softmax(logits_T, dim=-1)
            log_norm_gap = (_log_normalisers(logits_T, probs_T, start) -
                            _log_normalisers(logits_S, probs_S, start))
            gap = logits_T.sub_(logits_S)  # z_T - z_S
            del logits_S
            # Row by row, then summed in float64: one float32 dot over the
            # whole block would lose digits to its long accumulation.
            row_kl = torch.einsum('nij,nij->ni', probs_T, gap)
            total += (row_kl - log_norm_gap).sum(dtype=torch.float64)
            del gap, logits_T
            if not need_grad:
                continue
            block_grad = probs_S.sub_(probs_T)  # G = R_S - R_T
            del probs_T
            unit_rows = unit_S[images, rows]
            grad_S[images, rows].baddbmm_(block_grad, unit_S[images])
            grad_S[images].baddbmm_(block_grad.transpose(1, 2), unit_rows)
            del block_grad, probs_S
        count = num_images * num_positions
        ctx.save_for_backward(grad_S)
        ctx.scale = 1 / (count * tau)
        return (total / count).to(unit_S.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor):
        (grad_S, ) = ctx.saved_tensors
        if grad_S is None:
            return None, None, None, None
        return grad_S * (grad_output * ctx.scale), None, None, None


@float32_math
def context_relation_kl(preds_S: Tensor,
                        preds_T: Tensor,
                        tau: float = 0.1,
                        chunk_size: int = 4096) -> Tensor:
    """Context relation KL in bounded memory (formula in the module doc).

    Rows of the relation matrices are processed a block at a time (several
    small images per block when M is small); each block yields its share of
    the loss and, when the student needs a gradient, of that gradient, so no
    tensor larger than a block is created and the backward only scales the
    kept gradient. A block has at most ``chunk_size`` rows, fewer when M is
    large (about ``BLOCK_ELEMENTS`` relation entries, the size at which the
    matrix products run fastest). The teacher gets no gradient; the result
    is not twice differentiable.

    Args:
        preds_S: student features (N, C_S, H, W).
        preds_T: teacher features (N, C_T, H, W); C_T may differ from C_S.
        tau: temperature of the cosine similarities.
        chunk_size: most rows per block; memory per block is at most about
            ``4 * min(chunk_size, BLOCK_ELEMENTS / M) * M`` floats.

    Returns:
        Tensor: scalar loss.

    Example:
        >>> feats_S, feats_T = torch.rand(2, 8, 5, 7), torch.rand(2, 16, 5, 7)
        >>> torch.allclose(context_relation_kl(feats_S, feats_T, chunk_size=4),
        ...                context_relation_kl_naive(feats_S, feats_T))
        True
    """
    _check_tau(tau)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f'{LOSS_NAME}: chunk_size must be a positive int, '
                         f'got {chunk_size!r}.')
    if not torch.is_grad_enabled():
        # needs_input_grad ignores no_grad: skip the gradient explicitly.
        preds_S = preds_S.detach()
    unit_S, unit_T = unit_positions(preds_S, preds_T)
    return _FusedRelationKL.apply(unit_S, unit_T, float(tau), chunk_size)


@MODELS.register_module()
class ContextLoss(LevelSumLoss):
    """Context distillation of BCD: match row-softmaxed self-relations.

    See the module doc for the formula and :func:`context_relation_kl` for
    the bounded-memory computation.

    Args:
        tau: temperature of the cosine similarities (default 0.1).
        chunk_size: relation rows computed at a time.
        pool: None (every position is a node) or the output size ``(h, w)``
            (an int for a square) of an adaptive average pooling applied to
            both maps first. It makes ``M = h * w`` a fixed budget whatever
            the input resolution, and lets maps of different sizes be
            compared. Averaging (not max) keeps each node a faithful summary
            of the features it covers.
        loss_weight: multiplies the loss.
        level_weights: weights of the levels when tuples of levels (e.g.
            FPN outputs) are passed; the level losses are summed.

    Example:
        >>> loss = ContextLoss(pool=(8, 8))
        >>> loss(torch.rand(2, 64, 33, 65), torch.rand(2, 256, 17, 33)).shape
        torch.Size([])
    """

    LOSS_NAME = LOSS_NAME

    def __init__(self,
                 tau: float = 0.1,
                 chunk_size: int = 4096,
                 pool: Optional[Union[int, Tuple[int, int]]] = None,
                 loss_weight: float = 1.0,
                 level_weights: Optional[Sequence[float]] = None) -> None:
        super().__init__(loss_weight, level_weights)
        _check_tau(tau)
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f'{LOSS_NAME}: chunk_size must be a positive '
                             f'int, got {chunk_size!r}.')
        if isinstance(pool, int):
            pool = (pool, pool)
        if pool is not None and (len(pool) != 2 or min(pool) < 1):
            raise ValueError(f'{LOSS_NAME}: pool must be None, a positive '
                             f'int or a pair (h, w), got {pool!r}.')
        self.tau = tau
        self.chunk_size = chunk_size
        self.pool = None if pool is None else tuple(pool)

    def level_loss(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        if self.pool is not None:
            check_ndim(LOSS_NAME, 'preds_S', preds_S, 4)
            check_ndim(LOSS_NAME, 'preds_T', preds_T, 4)
            preds_S = F.adaptive_avg_pool2d(preds_S, self.pool)
            preds_T = F.adaptive_avg_pool2d(preds_T, self.pool)
        return context_relation_kl(preds_S, preds_T, self.tau,
                                   self.chunk_size)
