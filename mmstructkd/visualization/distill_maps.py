"""The maps behind the pictures of ``tools/visualize_distill.py``.

Each function turns the tensors a distillation loss receives into the 2-D
maps that show *what* that loss compares, for one image (index 0 of the
batch). The formulas stay in ``mmstructkd.models.losses``: boundary maps,
per-pixel KL, per-row relation KL, node pooling, min-max rescaling and SSIM
maps are the losses' own public helpers, and the per-channel CWD values are
the CWD loss itself evaluated on one channel at a time. What is computed
here is only the slice of a matrix that a loss never forms as such (one row
of an affinity or relation matrix) and reductions for display.

Every function returns float32 CPU tensors and runs without gradients.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmstructkd.models.losses.boundary import (extract_boundary_map,
                                               match_boundary_sizes)
from mmstructkd.models.losses.channel_wise import channel_wise_divergence
from mmstructkd.models.losses.context import relation_kl_rows, unit_positions
from mmstructkd.models.losses.pair_wise import (DEFAULT_EPS, node_kernel,
                                                pool_nodes)
from mmstructkd.models.losses.pixel_wise import pixel_kl_map
from mmstructkd.models.losses.ssim import min_max_rescale, ssim_map
from mmstructkd.models.losses.utils import TensorOrLevels, as_levels

__all__ = [
    'as_level_list', 'channel_distributions', 'channel_divergences',
    'node_grid', 'node_at', 'affinity_row', 'relation_row',
    'relation_kl_map', 'stage_boundary_maps', 'ssim_level_maps',
    'pixel_divergence_map'
]

# Relation rows computed at a time by relation_kl_map: 1024 rows of a
# 128x256 map (M = 32768) are 128 MB of float32, once.
RELATION_ROWS_PER_CHUNK = 1024


def as_level_list(preds_S: TensorOrLevels,
                  preds_T: TensorOrLevels,
                  name: str = 'visualize') -> List[Tuple[Tensor, Tensor]]:
    """Pair student and teacher levels: one map counts as one level."""
    levels_S, levels_T = as_levels(name, preds_S, preds_T)
    return [(s.detach().float().cpu(), t.detach().float().cpu())
            for s, t in zip(levels_S, levels_T)]


@torch.no_grad()
def channel_distributions(preds: Tensor, tau: float = 1.0) -> Tensor:
    """What CWD compares: each channel as a distribution over positions.

    ``p[c, h, w] = softmax_{hw}(x[0, c] / tau)``: every channel sums to 1
    over the H x W positions.

    Args:
        preds: map of shape (N, C, H, W); only image 0 is used.
        tau: temperature of :class:`ChannelWiseDivergence`.

    Returns:
        Tensor of shape (C, H, W).
    """
    x = preds[0].detach().float().cpu()
    return F.softmax(x.flatten(1) / tau, dim=1).view_as(x)


@torch.no_grad()
def channel_divergences(preds_S: Tensor,
                        preds_T: Tensor,
                        tau: float = 1.0) -> Tensor:
    """The CWD loss of image 0, channel by channel.

    Entry ``c`` is ``channel_wise_divergence`` on channel ``c`` alone, i.e.
    ``tau^2 * KL(p_T[c] || p_S[c])``; their mean over channels is the
    (unweighted) CWD loss of the image.

    Returns:
        Tensor of shape (C, ).
    """
    s = preds_S[:1].detach().float().cpu()
    t = preds_T[:1].detach().float().cpu()
    return torch.stack([
        channel_wise_divergence(s[:, c:c + 1], t[:, c:c + 1], tau)
        for c in range(s.shape[1])
    ])


def node_grid(height: int, width: int,
              scale: Optional[float]) -> Tuple[int, int, int, int]:
    """Kernel and number of the pair-wise loss's nodes on an H x W map.

    Returns:
        ``(kernel_h, kernel_w, nodes_h, nodes_w)``; with ``scale=None``
        every position is a node (kernel 1).
    """
    if scale is None:
        return 1, 1, height, width
    kernel_h, kernel_w = node_kernel(height, width, scale)
    return (kernel_h, kernel_w, -(-height // kernel_h),
            -(-width // kernel_w))


def node_at(point: Sequence[float], frame: Tuple[int, int],
            feat_size: Tuple[int, int],
            kernel: Tuple[int, int] = (1, 1)) -> Tuple[int, int]:
    """The node of a feature map that covers a point of the input frame.

    Args:
        point: ``(y, x)`` in pixels of the network input (H_in x W_in).
        frame: ``(H_in, W_in)``.
        feat_size: ``(H, W)`` of the feature map.
        kernel: pooling kernel of the nodes (``(1, 1)``: positions).

    Returns:
        ``(row, col)`` of the node, clamped to the grid.
    """
    out = []
    for p, full, size, k in zip(point, frame, feat_size, kernel):
        position = min(max(int(p * size / full), 0), size - 1)
        out.append(position // k)
    return out[0], out[1]


def _unit_nodes(feats: Tensor, scale: Optional[float],
                pool: str) -> Tuple[Tensor, Tuple[int, int]]:
    nodes = pool_nodes(feats[:1].detach().float().cpu(), scale, pool)[0]
    return F.normalize(nodes.flatten(1), dim=0, eps=DEFAULT_EPS), tuple(
        nodes.shape[-2:])


@torch.no_grad()
def affinity_row(feats: Tensor,
                 node: Tuple[int, int],
                 scale: Optional[float] = 0.5,
                 pool: str = 'max') -> Tensor:
    """Row ``i`` of the pair-wise loss's affinity matrix, as a map.

    ``A[i, j] = <x_i, x_j>`` with ``x`` the L2-normalised nodes of
    :func:`~mmstructkd.models.losses.pair_wise.pool_nodes` (the loss's own
    pooling). The node's affinity with itself is 1, the maximum.

    Args:
        feats: feature map (N, C, H, W); image 0 is used.
        node: ``(row, col)`` of node ``i`` in the node grid.
        scale, pool: as in :class:`PairWiseLoss`.

    Returns:
        Tensor of shape (nodes_h, nodes_w).
    """
    unit, size = _unit_nodes(feats, scale, pool)
    index = node[0] * size[1] + node[1]
    return (unit[:, index] @ unit).view(size)


def _relation_inputs(feats: Tensor,
                     pool: Optional[Tuple[int, int]]) -> Tensor:
    x = feats[:1].detach().float().cpu()
    if pool is not None:
        # ContextLoss pools both maps the same way before relating positions.
        x = F.adaptive_avg_pool2d(x, pool)
    return x


@torch.no_grad()
def relation_row(feats: Tensor,
                 node: Tuple[int, int],
                 tau: float = 0.1,
                 pool: Optional[Tuple[int, int]] = None) -> Tensor:
    """Row ``i`` of the context loss's relation matrix, as a map.

    ``R[i, j] = softmax_j(<u_i, u_j> / tau)`` over the unit feature vectors
    of the positions (after the loss's optional average pooling): where
    position ``i`` finds its context. The row sums to 1.

    Returns:
        Tensor of shape (H, W) (the pooled size when ``pool`` is set).
    """
    x = _relation_inputs(feats, pool)
    unit = F.normalize(x[0].flatten(1), dim=0)
    index = node[0] * x.shape[-1] + node[1]
    return F.softmax(unit[:, index] @ unit / tau, dim=0).view(x.shape[-2:])


@torch.no_grad()
def relation_kl_map(feats_S: Tensor,
                    feats_T: Tensor,
                    tau: float = 0.1,
                    pool: Optional[Tuple[int, int]] = None,
                    rows_per_chunk: int = RELATION_ROWS_PER_CHUNK) -> Tensor:
    """``KL(R_T[i] || R_S[i])`` of every row ``i``, as a map.

    Its mean is the context loss of the image
    (:func:`~mmstructkd.models.losses.context.context_relation_kl`); each
    row is :func:`~mmstructkd.models.losses.context.relation_kl_rows`.
    Computed in blocks of rows, so no M x M matrix is held.

    Returns:
        Tensor of shape (H, W).
    """
    x_S, x_T = _relation_inputs(feats_S, pool), _relation_inputs(feats_T, pool)
    unit_S, unit_T = unit_positions(x_S, x_T)
    rows = [
        relation_kl_rows(unit_S, unit_T, tau,
                         rows=slice(start, start + rows_per_chunk))[0]
        for start in range(0, unit_S.shape[1], rows_per_chunk)
    ]
    return torch.cat(rows).view(x_T.shape[-2:])


@torch.no_grad()
def stage_boundary_maps(feats_S: Tensor, feats_T: Tensor,
                        **map_kwargs) -> Dict[str, Tensor]:
    """Boundary maps of one backbone stage, as the boundary loss sees them.

    Args:
        feats_S: student stage features (N, C_S, h, w); image 0 is used.
        feats_T: teacher stage features (N, C_T, H, W).
        map_kwargs: ``neighbourhood``, ``reduction``, ``normalize``,
            ``eps`` of :func:`extract_boundary_map` (the loss's settings);
            ``resize_to`` of :func:`match_boundary_sizes`.

    Returns:
        dict with ``student`` (h, w) and ``teacher`` (H, W) maps at their
        own resolutions and ``squared_diff``, ``(B_S - B_T)^2`` at the size
        the loss compares them (whose mean is the stage's MSE term).
    """
    resize_to = map_kwargs.pop('resize_to', 'teacher')
    boundary_S = extract_boundary_map(feats_S[:1].detach().float().cpu(),
                                      **map_kwargs)
    boundary_T = extract_boundary_map(feats_T[:1].detach().float().cpu(),
                                      **map_kwargs)
    matched_S, matched_T = match_boundary_sizes(boundary_S, boundary_T,
                                                resize_to)
    return dict(
        student=boundary_S[0, 0],
        teacher=boundary_T[0, 0],
        squared_diff=(matched_S - matched_T)[0, 0].square())


@torch.no_grad()
def ssim_level_maps(level_S: Tensor,
                    level_T: Tensor,
                    normalize: str = 'sample',
                    **options) -> Dict[str, Tensor]:
    """What the SSIM loss compares on one FPN level, for image 0.

    Args:
        level_S: student level (N, C, H, W).
        level_T: teacher level, same shape.
        normalize: the loss's min-max rescaling, see
            :func:`~mmstructkd.models.losses.ssim.min_max_rescale`.
        options: the loss's ``window_size``, ``sigma``, ``k1``, ``k2``, see
            :func:`~mmstructkd.models.losses.ssim.ssim_constants`.

    Returns:
        dict with ``teacher`` and ``student``: the maps min-max rescaled as
        the loss does, (C, H, W); ``ssim``: the per-channel SSIM maps at the
        valid window positions, (C, H - w + 1, W - w + 1); ``loss``:
        ``1 - mean SSIM``, the level's (unweighted) loss for this image;
        ``window``: the fitted window side w.
    """
    s = min_max_rescale(level_S[:1].detach().float().cpu(), normalize)
    t = min_max_rescale(level_T[:1].detach().float().cpu(), normalize)
    ssim = ssim_map(s, t, **options)
    return dict(
        teacher=t[0],
        student=s[0],
        ssim=ssim[0],
        loss=1 - ssim.mean(),
        window=s.shape[-1] - ssim.shape[-1] + 1)


@torch.no_grad()
def pixel_divergence_map(logits_S: Tensor,
                         logits_T: Tensor,
                         tau: float = 1.0) -> Tensor:
    """Per-pixel ``tau^2 KL(p_T || p_S)`` over classes of image 0, (H, W).

    The pixel-wise loss is its mean (see
    :func:`~mmstructkd.models.losses.pixel_wise.pixel_kl_map`).
    """
    return pixel_kl_map(logits_S[:1].detach().float().cpu(),
                        logits_T[:1].detach().float().cpu(), tau)[0]
