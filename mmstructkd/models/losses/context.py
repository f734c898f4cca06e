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

Memory. For a 1024 x 2048 frame at 1/8 resolution ``M = 32768`` and one
``M x M`` float32 matrix is 4.3 GB, and autograd would keep several.
:func:`context_relation_kl` therefore works on blocks of at most
``chunk_size`` rows (``chunk_size x M`` entries) and uses a custom autograd
function whose backward recomputes each block's relations from the saved
unit features (``N x M x C``) instead of storing them: forward and backward
both peak at a few ``chunk_size x M`` buffers.
:func:`context_relation_kl_naive` materialises the full matrices and exists
for tests and benchmarks; :func:`relation_kl_rows` is the per-row formula
by plain autograd, on any block of rows (the naive loss and the
visualisation use it).
"""
from typing import Iterator, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from mmstructkd.registry import MODELS
from .utils import LevelSumLoss, check_map_pair, check_ndim, float32_math

LOSS_NAME = 'ContextLoss'
SPATIAL_HINT = ('The relation matrices are M x M with M = H * W, so both maps '
                'need the same H x W: resize one of them (e.g. a connector '
                'that interpolates) or set pool=(h, w) in ContextLoss to '
                'average-pool both to a common size.')


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


def _log_softmax_(logits: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Row log-softmax in place; also return ``exp(z - max z)`` and log Z.

    ``torch.log_softmax`` plus ``exp`` would allocate two more r x M
    buffers per call; here the logits buffer becomes ``log R``, one new
    buffer holds the unnormalised probabilities ``R * Z / exp(max z)``, and
    the per-row ``log Z`` (r values) is kept so the backward can rebuild
    ``R = exp(z - log Z)`` without another reduction.
    """
    log_norm = logits.amax(dim=-1, keepdim=True)
    logits.sub_(log_norm)
    unnormalised = torch.exp(logits)
    log_sums = unnormalised.sum(dim=-1, keepdim=True).log_()
    logits.sub_(log_sums)
    return logits, unnormalised, log_norm.add_(log_sums)


class _ChunkedRelationKL(torch.autograd.Function):
    """Relation KL over row blocks; backward recomputes every block.

    Inputs are the unit position vectors (N, M, C_S) and (N, M, C_T).
    For one row ``i`` the gradient of ``KL(R_T[i] || R_S[i])`` with respect
    to the student's scaled similarities ``z[i, :] = <u_i, u_:> / tau`` is
    ``R_S[i] - R_T[i]``, and ``z = U U^T / tau`` gives
    ``dU[rows] += G U / tau`` and ``dU += G^T U[rows] / tau`` for a block
    ``G``. Between forward and backward only the inputs and the per-row log
    normalisers (N x M each) are kept, nothing of size M x M.
    """

    @staticmethod
    def forward(ctx, unit_S: Tensor, unit_T: Tensor, tau: float,
                chunk_size: int) -> Tensor:
        num_images, num_positions = unit_S.shape[:2]
        log_norm_S = unit_S.new_empty(num_images, num_positions, 1)
        log_norm_T = unit_S.new_empty(num_images, num_positions, 1)
        total = unit_S.new_zeros((), dtype=torch.float64)
        for images, rows in _row_blocks(num_images, num_positions,
                                        chunk_size):
            # relation_kl_rows(...).sum() of the block, from the same
            # logits, with the softmax and the difference done in place.
            log_R_S, weights_S, log_norm_S[images, rows] = _log_softmax_(
                _block_logits(unit_S, images, rows, tau))
            del weights_S  # so at most three r x M buffers live at once
            log_R_T, weights_T, log_norm_T[images, rows] = _log_softmax_(
                _block_logits(unit_T, images, rows, tau))
            diff = log_R_S.neg_().add_(log_R_T)  # log R_T - log R_S
            R_T = weights_T.div_(weights_T.sum(dim=-1, keepdim=True))
            total += torch.dot(R_T.flatten(), diff.flatten()).double()
            del log_R_S, log_R_T, weights_T, R_T, diff
        ctx.save_for_backward(unit_S, log_norm_S, unit_T, log_norm_T)
        ctx.tau = tau
        ctx.chunk_size = chunk_size
        return (total / (num_images * num_positions)).to(unit_S.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        unit_S, log_norm_S, unit_T, log_norm_T = ctx.saved_tensors
        num_images, num_positions = unit_S.shape[:2]
        scale = grad_output / (num_images * num_positions * ctx.tau)
        grad_S = torch.zeros_like(unit_S)
        for images, rows in _row_blocks(num_images, num_positions,
                                        ctx.chunk_size):
            block = _block_logits(unit_S, images, rows, ctx.tau)
            block.sub_(log_norm_S[images, rows]).exp_()  # R_S
            R_T = _block_logits(unit_T, images, rows, ctx.tau)
            block.sub_(R_T.sub_(log_norm_T[images, rows]).exp_())
            del R_T
            # Similarities are symmetric: a row block feeds both its own
            # rows (G U) and, through the columns, every position (G^T U).
            # The scale goes on the r x C factors, not the r x M block.
            grad_S[images, rows] += torch.bmm(block, unit_S[images]) * scale
            grad_S[images] += torch.bmm(
                block.transpose(1, 2), unit_S[images, rows] * scale)
            del block
        return grad_S, None, None, None


@float32_math
def context_relation_kl(preds_S: Tensor,
                        preds_T: Tensor,
                        tau: float = 0.1,
                        chunk_size: int = 4096) -> Tensor:
    """Context relation KL in bounded memory (formula in the module doc).

    Rows of the relation matrices are processed ``chunk_size`` at a time
    (several small images per step when ``M <= chunk_size``), in forward
    and backward, so no tensor larger than ``chunk_size x M`` is created.
    The backward recomputes each block (twice the matrix products of a
    stored-activation backward, a fraction of the memory). The teacher gets
    no gradient.

    Args:
        preds_S: student features (N, C_S, H, W).
        preds_T: teacher features (N, C_T, H, W); C_T may differ from C_S.
        tau: temperature of the cosine similarities.
        chunk_size: rows per block; memory per block is about
            ``3 * chunk_size * M`` floats (forward; 2 in backward).

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
    unit_S, unit_T = unit_positions(preds_S, preds_T)
    return _ChunkedRelationKL.apply(unit_S, unit_T, float(tau), chunk_size)


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
