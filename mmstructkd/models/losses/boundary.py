"""Boundary distillation: the boundary half of BCD.

BCD: D. Zhang, P. Dong, X. Hu, L. Chen, K.-T. Cheng, *Towards Complementary
Knowledge Distillation for Efficient Dense Image Prediction*,
arXiv:2401.13174, 2024 (published as BCKD in TMLR, 2026). It extracts
object-level semantic boundaries from the backbone's hierarchical feature
maps, with no boundary labels and no extra supervision, and transfers the
teacher's boundaries to the student. The paper's equations were not
available to this project, so the formulas below are a reconstruction from
that definition; every choice is a keyword argument and is explained where
it is made:

1. **Boundary map** (:func:`extract_boundary_map`): a position lies on a
   semantic boundary when its feature vector differs from a neighbour's.
   From a stage's features ``x`` (N, C, H, W) (C may differ between
   student and teacher) to a map ``B`` (N, 1, H, W): with unit vectors
   ``u = x / ||x||`` over channels,
   ``D[p] = max_{q in N8(p)} (1 - <u_p, u_q>)`` (or the mean over the
   neighbourhood), with replicate padding at the image border, then
   per-image min-max normalisation ``B = (D - min D) / max(max D - min D,
   eps)`` so maps of networks with any channel count are in ``[0, 1]``.
2. **Boundary matching** (:func:`boundary_distillation_loss`): per backbone
   stage ``s``, the student's map is resized (bilinear) to the teacher's
   size and ``L_b = sum_s w_s * mean_{n,h,w} (B_S^s - B_T^s)^2`` (or L1).
3. **Boundary-weighted logit distillation** (:func:`boundary_weighted_kl`):
   the pixel-wise KL of SKD (Liu et al., *Structured Knowledge
   Distillation for Semantic Segmentation*, CVPR 2019; see
   :mod:`~mmstructkd.models.losses.pixel_wise`) with per-pixel weights that
   grow on the teacher's boundaries. On logits (N, K, H, W), with
   ``p = softmax(logits / tau)`` over the K classes and ``B_T`` resized to
   H x W, ``W = (1 + alpha * B_T) / mean_{h,w}(1 + alpha * B_T)`` and
   ``L_kd = tau^2 * mean_{n,h,w} W * sum_k pT_k (log pT_k - log pS_k)``.

:class:`BoundaryLoss` returns
``loss_weight * (L_b + boundary_kd_weight * L_kd)``, the second term only
when logits are passed.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmstructkd.registry import MODELS
from .pixel_wise import pixel_kl_map
from .utils import as_levels, check_ndim, check_same_shape, float32_math

LOSS_NAME = 'BoundaryLoss'
TensorOrStages = Union[Tensor, Sequence[Tensor]]

# (dy, dx) offsets of the neighbours compared with each position.
NEIGHBOUR_OFFSETS = {
    4: ((-1, 0), (1, 0), (0, -1), (0, 1)),
    8: ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0),
        (1, 1)),
}
REDUCTIONS = ('max', 'mean')
NORMALIZATIONS = ('minmax', 'max', None)
CRITERIA = ('mse', 'l1')
RESIZE_TARGETS = ('teacher', 'larger')


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f'{LOSS_NAME}: {name} must be one of {choices}, '
                         f'got {value!r}.')


def _neighbour_similarities(
        unit: Tensor, offsets: Sequence[Tuple[int, int]]
) -> Dict[Tuple[int, int], Tensor]:
    """``<u_p, u_{p+o}>`` for every position p and offset o, as (N, H, W)
    maps keyed by o, on the replicate-padded map.

    The similarity is symmetric, so each pair of opposite offsets shares one
    C-wide product: for o with ``dy > 0`` (or ``dy = 0, dx > 0``) it is
    computed once over the anchors of both ``p -> p + o`` and
    ``p - o -> p``, and the two maps are slices of it. Half the products of
    one per neighbour, and the same numbers (a product does not depend on
    the order of its factors).
    """
    height, width = unit.shape[-2:]
    padded = F.pad(unit, (1, 1, 1, 1), mode='replicate')
    maps = {}
    for dy, dx in offsets:
        if (dy, dx) < (0, 0) or (dy, dx) in maps:
            continue
        # Anchors (padded coordinates): rows 1 - dy .. H, columns
        # 1 - max(dx, 0) .. W - min(dx, 0).
        left, right = 1 - max(dx, 0), width + 1 - min(dx, 0)
        first = padded[:, :, 1 - dy:height + 1, left:right]
        second = padded[:, :, 1:height + 1 + dy, left + dx:right + dx]
        products = (first * second).sum(dim=1)
        start = max(dx, 0)
        maps[(dy, dx)] = products[:, dy:dy + height, start:start + width]
        maps[(-dy, -dx)] = products[:, :height, start - dx:start - dx + width]
    return maps


@float32_math
def extract_boundary_map(features: Tensor,
                         neighbourhood: int = 8,
                         reduction: str = 'max',
                         normalize: Optional[str] = 'minmax',
                         eps: float = 1e-3) -> Tensor:
    """Soft semantic-boundary map of a feature map, without labels.

    Each position's feature vector is L2-normalised over channels and
    compared with its neighbours by cosine dissimilarity::

        D[n, p] = reduce_{q in N(p)} (1 - <u[n, :, p], u[n, :, q]>)

    **Neighbourhood and reduction.** ``N(p)`` is the 8-neighbourhood by
    default (4 also possible): diagonal boundaries then look the same as
    axis-aligned ones. ``reduction='max'`` (default) marks a position as
    soon as *one* neighbour lies across a boundary, so every position on
    either side of a border gets the full dissimilarity of the two regions
    and the map is a thin, even contour of width two; ``'mean'`` gives a
    smoother map whose value also depends on the border's shape (a straight
    border gets 3/8 of the dissimilarity with 8 neighbours, a convex corner
    5/8). Cosine (not Euclidean) distance makes the map independent of the
    feature scale, which differs between networks and stages.

    **Borders.** The map is padded by replicating its edge, so a neighbour
    outside the image is the position itself (dissimilarity 0): the image
    border is not a boundary.

    **Normalisation** (per image, so teacher and student maps are comparable
    whatever their channel counts and typical feature similarity):
    ``'minmax'`` (default) ``(D - min D) / max(max D - min D, eps)`` also
    removes the floor of texture dissimilarity that every position has,
    which differs from one network to another; ``'max'`` divides by
    ``max(max D, eps)``; ``None`` keeps ``D`` in ``[0, 2]``. ``eps`` is in
    units of ``1 - cos``: an image whose dissimilarities span less than
    ``eps`` (a flat region, e.g. a crop of sky) is treated as having no
    boundaries instead of having its noise stretched to ``[0, 1]``.

    Positions whose features are all zero (dead ReLU units) are dissimilar
    (1) to every non-zero neighbour.

    Args:
        features: feature map of shape (N, C, H, W); any C.
        neighbourhood: 4 or 8.
        reduction: ``'max'`` or ``'mean'`` over the neighbourhood.
        normalize: ``'minmax'``, ``'max'`` or None.
        eps: floor of the per-image range (or maximum) used to normalise.

    Returns:
        Tensor: boundary map of shape (N, 1, H, W), in ``[0, 1]`` when
        normalised (up to rounding).

    Example:
        >>> feats = torch.zeros(1, 2, 4, 6)
        >>> feats[:, 0, :, :3] = 1  # left half: region A
        >>> feats[:, 1, :, 3:] = 1  # right half: region B
        >>> extract_boundary_map(feats)[0, 0, 0]
        tensor([0., 0., 1., 1., 0., 0.])
    """
    check_ndim(LOSS_NAME, 'features', features, 4)
    _check_choice('neighbourhood', neighbourhood, tuple(NEIGHBOUR_OFFSETS))
    _check_choice('reduction', reduction, REDUCTIONS)
    _check_choice('normalize', normalize, NORMALIZATIONS)
    offsets = NEIGHBOUR_OFFSETS[neighbourhood]
    similarity = _neighbour_similarities(F.normalize(features, dim=1),
                                         offsets)
    dissimilarity = torch.stack(
        [1 - similarity[offset] for offset in offsets], dim=1)
    if reduction == 'max':
        boundary = dissimilarity.amax(dim=1, keepdim=True)
    else:
        boundary = dissimilarity.mean(dim=1, keepdim=True)
    if normalize is None:
        return boundary
    flat = boundary.flatten(1)
    top = flat.amax(dim=1).view(-1, 1, 1, 1)
    if normalize == 'max':
        return boundary / top.clamp_min(eps)
    bottom = flat.amin(dim=1).view(-1, 1, 1, 1)
    return (boundary - bottom) / (top - bottom).clamp_min(eps)


def _resize(boundary: Tensor, size: Tuple[int, int]) -> Tensor:
    if tuple(boundary.shape[-2:]) == tuple(size):
        return boundary
    return F.interpolate(
        boundary, size=size, mode='bilinear', align_corners=False)


def match_boundary_sizes(boundary_S: Tensor,
                         boundary_T: Tensor,
                         resize_to: str = 'teacher') -> Tuple[Tensor, Tensor]:
    """Bring a student and a teacher boundary map to one spatial size.

    Boundary maps are extracted at each network's own resolution (a
    neighbourhood is one position of *that* map) and resized afterwards, by
    bilinear interpolation (``align_corners=False``, as mmseg resizes
    logits), which keeps values in ``[0, 1]``.

    Args:
        boundary_S: student map (N, 1, h_S, w_S).
        boundary_T: teacher map (N, 1, h_T, w_T).
        resize_to: ``'teacher'`` (default): the student's map is resized to
            the teacher's size, so the target is compared exactly as the
            teacher produced it and gradients reach the student through the
            interpolation. ``'larger'``: both maps go to
            ``(max(h_S, h_T), max(w_S, w_T))``, so neither map is
            down-sampled (useful when the student's map is finer, where
            down-sampling would thin out its one-position-wide contours).

    Returns:
        tuple[Tensor, Tensor]: the two maps at one size.
    """
    _check_choice('resize_to', resize_to, RESIZE_TARGETS)
    size_T = tuple(boundary_T.shape[-2:])
    if resize_to == 'teacher':
        return _resize(boundary_S, size_T), boundary_T
    size_S = tuple(boundary_S.shape[-2:])
    size = (max(size_S[0], size_T[0]), max(size_S[1], size_T[1]))
    return _resize(boundary_S, size), _resize(boundary_T, size)


@float32_math
def boundary_weighted_kl(logits_S: Tensor,
                         logits_T: Tensor,
                         boundary_T: Tensor,
                         alpha: float = 1.0,
                         tau: float = 1.0) -> Tensor:
    """Pixel-wise KL distillation weighted toward the teacher's boundaries.

    ::

        W[n]  = (1 + alpha * B[n]) / mean_{h,w}(1 + alpha * B[n])
        L_kd  = mean_{n,h,w} W[n, h, w] * kl[n, h, w]

    with ``kl[n, h, w] = tau^2 * sum_k pT_k (log pT_k - log pS_k)`` the
    per-pixel KL of SKD
    (:func:`~mmstructkd.models.losses.pixel_wise.pixel_kl_map`) and ``B``
    the teacher's boundary map resized (bilinear) to the logits' size.
    Normalising ``W`` to mean 1 per image shifts the loss toward boundary
    pixels without changing its overall scale: with ``alpha=0`` (or no
    boundary) it is exactly the plain pixel-wise loss, so its weight carries
    over. The weights are taken from
    the teacher and get no gradient.

    Args:
        logits_S: student logits (N, K, H, W).
        logits_T: teacher logits (N, K, H, W).
        boundary_T: teacher boundary map (N, 1, h, w) in ``[0, 1]``.
        alpha: extra weight of a full-strength boundary pixel (>= 0).
        tau: temperature of the softmax over classes.

    Returns:
        Tensor: scalar loss.
    """
    check_ndim(LOSS_NAME, 'logits_S', logits_S, 4)
    check_same_shape(
        LOSS_NAME,
        logits_S,
        logits_T,
        hint='Student and teacher logits must have the same classes and '
        'size: resize the student logits to the teacher size (e.g. in a '
        'connector) before distilling.')
    if boundary_T.dim() != 4 or boundary_T.shape[:2] != (
            logits_T.shape[0], 1):
        raise ValueError(
            f'{LOSS_NAME}: boundary_T must have shape (N, 1, h, w) with the '
            f'batch of the logits {tuple(logits_T.shape)}, got '
            f'{tuple(boundary_T.shape)}.')
    if alpha < 0:
        raise ValueError(f'{LOSS_NAME}: alpha must be >= 0, got {alpha}.')
    weight = 1 + alpha * _resize(boundary_T.detach(), logits_T.shape[-2:])
    weight = weight / weight.mean(dim=(2, 3), keepdim=True)
    return (weight[:, 0] * pixel_kl_map(logits_S, logits_T, tau)).mean()


def _stage_weights(name: str, weights: Optional[Sequence[float]],
                   num_stages: int) -> Sequence[float]:
    if weights is None:
        return [1.0] * num_stages
    if len(weights) != num_stages:
        raise ValueError(
            f'{LOSS_NAME}: {name} has {len(weights)} entries but there are '
            f'{num_stages} backbone stages.')
    return list(weights)


@float32_math
def boundary_distillation_loss(feats_S: TensorOrStages,
                               feats_T: TensorOrStages,
                               logits_S: Optional[Tensor] = None,
                               logits_T: Optional[Tensor] = None,
                               stage_weights: Optional[Sequence[float]] = None,
                               boundary_kd_weight: float = 1.0,
                               alpha: float = 1.0,
                               tau: float = 1.0,
                               kd_stage_weights: Optional[
                                   Sequence[float]] = None,
                               neighbourhood: int = 8,
                               reduction: str = 'max',
                               normalize: Optional[str] = 'minmax',
                               eps: float = 1e-3,
                               criterion: str = 'mse',
                               resize_to: str = 'teacher') -> Tensor:
    """Boundary matching plus boundary-weighted logit distillation.

    ::

        L = sum_s w_s * crit(resize(B_S^s), B_T^s)
            + boundary_kd_weight * L_kd(logits_S, logits_T, B_T^kd)

    ``B^s`` is :func:`extract_boundary_map` of stage ``s`` and ``crit`` the
    mean over ``n, h, w`` of the squared (``'mse'``, default) or absolute
    (``'l1'``) difference. MSE is chosen because both maps are soft values
    in ``[0, 1]`` rather than labels (so no BCE, whose log blows up at the
    exact 0 and 1 that min-max normalisation produces), and it penalises a
    missed strong boundary more than many faint differences. The stage
    terms are summed, as levels are elsewhere in this package.

    ``B_T^kd``, the map that weights the logit term, is the weighted mean
    of the teacher's stage maps, each resized to the logits' size, with
    ``kd_stage_weights`` (default: ``stage_weights``): the deep stages give
    semantic borders, the shallow ones locate them precisely.

    Args:
        feats_S: student stage features, a tuple of (N, C_s, H_s, W_s)
            tensors (e.g. a ResNet backbone's output) or one tensor.
        feats_T: teacher stage features, as many stages; channel counts and
            resolutions may differ from the student's.
        logits_S: optional student logits (N, K, H, W).
        logits_T: optional teacher logits (N, K, H, W); give both or none.
        stage_weights: weight of each stage's matching term (default 1).
        boundary_kd_weight: weight of the logit term; 0 skips it.
        alpha: see :func:`boundary_weighted_kl`.
        tau: temperature of the logit term.
        kd_stage_weights: weights of the stages in ``B_T^kd``.
        neighbourhood, reduction, normalize, eps: see
            :func:`extract_boundary_map`.
        criterion: ``'mse'`` or ``'l1'``.
        resize_to: see :func:`match_boundary_sizes`.

    Returns:
        Tensor: scalar loss (not yet multiplied by a loss weight).
    """
    _check_choice('criterion', criterion, CRITERIA)
    _check_choice('resize_to', resize_to, RESIZE_TARGETS)
    stages_S, stages_T = as_levels(LOSS_NAME, feats_S, feats_T)
    if len(stages_S) == 0:
        raise ValueError(f'{LOSS_NAME}: got no feature stages.')
    weights = _stage_weights('stage_weights', stage_weights, len(stages_S))
    if (logits_S is None) != (logits_T is None):
        raise ValueError(
            f'{LOSS_NAME}: pass both logits_S and logits_T (for the '
            f'boundary-weighted logit term) or neither.')
    map_kwargs = dict(
        neighbourhood=neighbourhood,
        reduction=reduction,
        normalize=normalize,
        eps=eps)
    distance = F.mse_loss if criterion == 'mse' else F.l1_loss
    use_kd = logits_S is not None and boundary_kd_weight != 0
    kd_weights = [0.0] * len(stages_S)
    if use_kd:
        kd_weights = _stage_weights(
            'kd_stage_weights',
            weights if kd_stage_weights is None else kd_stage_weights,
            len(stages_S))
        if sum(kd_weights) <= 0:
            raise ValueError(
                f'{LOSS_NAME}: the stage weights of the logit term must have '
                f'a positive sum, got {list(kd_weights)}.')

    total = None
    boundary_kd = 0
    for index, (feat_S, feat_T) in enumerate(zip(stages_S, stages_T)):
        check_ndim(LOSS_NAME, f'student stage {index}', feat_S, 4)
        check_ndim(LOSS_NAME, f'teacher stage {index}', feat_T, 4)
        check_same_shape(
            LOSS_NAME,
            feat_S,
            feat_T,
            dims=(0, ),
            what=f'batch sizes at stage {index}')
        if weights[index] == 0 and kd_weights[index] == 0:
            continue
        # The teacher's maps are targets and weights: no autograd state.
        with torch.no_grad():
            boundary_T = extract_boundary_map(feat_T, **map_kwargs)
            if kd_weights[index] != 0:
                boundary_kd = boundary_kd + kd_weights[index] * _resize(
                    boundary_T, logits_T.shape[-2:])
        if weights[index] == 0:
            continue
        boundary_S, boundary_T = match_boundary_sizes(
            extract_boundary_map(feat_S, **map_kwargs), boundary_T,
            resize_to)
        term = weights[index] * distance(boundary_S, boundary_T)
        total = term if total is None else total + term
    if total is None:  # every stage weight is 0: keep the graph alive
        total = sum(feat.sum() for feat in stages_S) * 0.0
    if not use_kd:
        return total
    boundary_kd = boundary_kd / sum(kd_weights)
    return total + boundary_kd_weight * boundary_weighted_kl(
        logits_S, logits_T, boundary_kd, alpha=alpha, tau=tau)


@MODELS.register_module()
class BoundaryLoss(nn.Module):
    """Boundary distillation of BCD (reconstructed; see the module doc).

    Matches label-free boundary maps of the backbone stages and, when
    logits are given, adds pixel-wise logit distillation weighted toward
    the teacher's boundaries. The formula is in
    :func:`boundary_distillation_loss`.

    A distiller feeds it with ``loss_forward_mappings`` such as::

        loss_boundary=dict(
            feats_S=dict(from_student=True, recorder='backbone'),
            feats_T=dict(from_student=False, recorder='backbone'),
            logits_S=dict(from_student=True, recorder='logits'),
            logits_T=dict(from_student=False, recorder='logits'))

    where the ``backbone`` recorder holds the backbone's output (a tuple of
    stages for a ResNet) and ``logits`` are optional.

    Args:
        stage_weights: weight of each stage's boundary-matching term
            (default 1 for every stage).
        loss_weight: multiplies the whole loss.
        boundary_kd_weight: weight of the boundary-weighted logit term
            relative to the matching term; 0 disables it.
        alpha: extra weight of a boundary pixel in the logit term.
        tau: temperature of the logit term.
        kd_stage_weights: stage weights of the teacher map that weights the
            logit term (default: ``stage_weights``).
        neighbourhood: 4 or 8 neighbours compared with each position.
        reduction: ``'max'`` or ``'mean'`` over the neighbours.
        normalize: ``'minmax'``, ``'max'`` or None (per image).
        eps: floor of the normalisation range, in units of ``1 - cos``.
        criterion: ``'mse'`` or ``'l1'`` between boundary maps.
        resize_to: ``'teacher'`` or ``'larger'``.

    Example:
        >>> loss = BoundaryLoss()
        >>> feats_S = (torch.rand(2, 8, 16, 16), torch.rand(2, 16, 8, 8))
        >>> feats_T = (torch.rand(2, 32, 16, 16), torch.rand(2, 64, 8, 8))
        >>> loss(feats_S, feats_T, torch.rand(2, 5, 16, 16),
        ...      torch.rand(2, 5, 16, 16)).shape
        torch.Size([])
    """

    def __init__(self,
                 stage_weights: Optional[Sequence[float]] = None,
                 loss_weight: float = 1.0,
                 boundary_kd_weight: float = 1.0,
                 alpha: float = 1.0,
                 tau: float = 1.0,
                 kd_stage_weights: Optional[Sequence[float]] = None,
                 neighbourhood: int = 8,
                 reduction: str = 'max',
                 normalize: Optional[str] = 'minmax',
                 eps: float = 1e-3,
                 criterion: str = 'mse',
                 resize_to: str = 'teacher') -> None:
        super().__init__()
        # Fail at build time, not at the first training step.
        _check_choice('neighbourhood', neighbourhood, tuple(NEIGHBOUR_OFFSETS))
        _check_choice('reduction', reduction, REDUCTIONS)
        _check_choice('normalize', normalize, NORMALIZATIONS)
        _check_choice('criterion', criterion, CRITERIA)
        _check_choice('resize_to', resize_to, RESIZE_TARGETS)
        if alpha < 0 or tau <= 0 or eps <= 0:
            raise ValueError(
                f'{LOSS_NAME}: need alpha >= 0, tau > 0 and eps > 0, got '
                f'alpha={alpha}, tau={tau}, eps={eps}.')
        self.stage_weights = stage_weights
        self.loss_weight = loss_weight
        self.boundary_kd_weight = boundary_kd_weight
        self.alpha = alpha
        self.tau = tau
        self.kd_stage_weights = kd_stage_weights
        self.neighbourhood = neighbourhood
        self.reduction = reduction
        self.normalize = normalize
        self.eps = eps
        self.criterion = criterion
        self.resize_to = resize_to

    def forward(self,
                feats_S: TensorOrStages,
                feats_T: TensorOrStages,
                logits_S: Optional[Tensor] = None,
                logits_T: Optional[Tensor] = None) -> Tensor:
        """Weighted boundary-distillation loss (a scalar).

        Args:
            feats_S: student stage features (tuple of (N, C, H, W)).
            feats_T: teacher stage features, as many stages.
            logits_S: optional student logits (N, K, H, W).
            logits_T: optional teacher logits (N, K, H, W).
        """
        return self.loss_weight * boundary_distillation_loss(
            feats_S,
            feats_T,
            logits_S,
            logits_T,
            stage_weights=self.stage_weights,
            boundary_kd_weight=self.boundary_kd_weight,
            alpha=self.alpha,
            tau=self.tau,
            kd_stage_weights=self.kd_stage_weights,
            neighbourhood=self.neighbourhood,
            reduction=self.reduction,
            normalize=self.normalize,
            eps=self.eps,
            criterion=self.criterion,
            resize_to=self.resize_to)
