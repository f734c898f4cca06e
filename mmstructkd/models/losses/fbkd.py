"""Feature-based knowledge distillation for detectors (FBKD; Zhang and Ma,
ICLR 2021).

"Improve Object Detection with Feature-based Knowledge Distillation: Towards
Accurate and Efficient Detectors". Plain feature imitation spends most of its
effort on background pixels; FBKD weights the imitation by attention masks
(where both networks' activations are large), adds terms that match the
attention-style poolings of the two maps, and distils the relations between
positions through non-local blocks. The masks, poolings and non-local blocks
live in the connectors (:class:`mmstructkd.models.connectors.
FBKDStudentConnector` and ``FBKDTeacherConnector``); this file holds the
distances between their outputs.
"""
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from mmstructkd.registry import MODELS
from .utils import check_map_pair, float32_math

LOSS_NAME = 'FBKDLoss'
STUDENT_FIELDS = ('s_spatial_mask', 's_channel_mask', 's_channel_pool_adapt',
                  's_spatial_pool_adapt', 's_relation_adapt', 's_feat_adapt')
TEACHER_FIELDS = ('t_spatial_mask', 't_channel_mask', 't_spatial_pool',
                  't_relation', 't_feat')


def masked_l2_distance(preds_S: Tensor,
                       preds_T: Tensor,
                       spatial_mask: Optional[Tensor] = None,
                       channel_mask: Optional[Tensor] = None) -> Tensor:
    """Attention-weighted L2 distance between two maps.

    ``d = sqrt(sum_{n,c,h,w} M_s[n,0,h,w] * M_c[n,c,0,0] *
    (S[n,c,h,w] - T[n,c,h,w])^2)``, a mask left out counting as 1.

    Args:
        preds_S: student map, shape (N, C, H, W).
        preds_T: teacher map, same shape.
        spatial_mask: shape (N, 1, H, W), or None.
        channel_mask: shape (N, C, 1, 1), or None.

    Returns:
        Scalar tensor.
    """
    # sqrt(sum(M * d^2)) written as the norm of sqrt(M) * d: the norm's
    # gradient is 0 (not NaN) when the two maps coincide.
    diff = preds_S - preds_T
    if spatial_mask is not None:
        diff = diff * spatial_mask.sqrt()
    if channel_mask is not None:
        diff = diff * channel_mask.sqrt()
    return torch.linalg.vector_norm(diff)


def _unpack(name: str, values: Sequence[Tensor], fields: Sequence[str],
            connector: str) -> Sequence[Tensor]:
    if not isinstance(values, (tuple, list)) or len(values) != len(fields):
        got = (f'{len(values)} values' if isinstance(values, (tuple, list))
               else type(values).__name__)
        raise ValueError(
            f'{LOSS_NAME}: {name} must be the {len(fields)}-tuple '
            f'{fields} that {connector} returns, got {got}: give the '
            f'mapping connector=\'...\' naming a {connector}.')
    return values


@float32_math
def fbkd_loss(s_input: Sequence[Tensor],
              t_input: Sequence[Tensor],
              mask_l2_weight: float = 7e-5,
              channel_weight: float = 4e-3,
              spatial_weight: float = 4e-3,
              nonlocal_weight: float = 7e-5,
              use_channel_mask: bool = False) -> Tensor:
    """FBKD loss between the student and teacher connectors' outputs.

    With the student tuple (``FBKDStudentConnector``): masks ``Ms_S``
    (N, 1, H, W) and ``Mc_S`` (N, C, 1, 1), adapted channel pooling ``P_S``
    (N, C_T), adapted spatial pooling ``Q_S`` (N, 1, H, W), adapted
    relations ``R_S`` (N, C_T, H, W) and adapted map ``S`` (N, C_T, H, W);
    and the teacher tuple (``FBKDTeacherConnector``): ``Ms_T``, ``Mc_T``,
    spatial pooling ``Q_T = mean_c T`` (N, 1, H, W), relations ``R_T``
    (N, C_T, H, W) and map ``T`` (N, C_T, H, W)::

        Ms = (Ms_S + Ms_T) / 2           (no gradient)
        Mc = (Mc_S + Mc_T) / 2           (no gradient; only when
                                          use_channel_mask, else 1)
        L_feat = sqrt(sum_{n,c,h,w} Ms[n,0,h,w] Mc[n,c] (S - T)^2)
        L_channel = ||P_S - mean_{h,w} T||_2          (over all N*C_T values)
        L_spatial = ||Q_S - Q_T||_2                   (over all N*H*W values)
        L_nonlocal = ||R_S - R_T||_2
        L = mask_l2_weight * L_feat + channel_weight * L_channel
            + spatial_weight * L_spatial + nonlocal_weight * L_nonlocal

    Every distance is a Euclidean norm (square root of a sum, not a mean),
    as in the authors' code and mmrazor; the default weights are theirs.
    The paper (Eq. 3-5) writes the attention term as an L1 loss between the
    two networks' masks; the code it was released with (and mmrazor)
    instead matches the student's *adapted* poolings to the teacher's, and
    uses the spatial mask only in the feature term, which is what is done
    here. ``use_channel_mask`` also applies the channel mask (the paper's
    Eq. 3); it needs equal student and teacher channel counts.

    Gradients: ``T``, ``Q_T`` and the masks are constants; ``R_T`` keeps its
    gradient, so the teacher-side non-local block is trained by
    ``L_nonlocal`` (as in mmrazor). Runs in float32 even under autocast.

    Args:
        s_input: the student connector's 6-tuple, in the order above.
        t_input: the teacher connector's 5-tuple, in the order above.
        mask_l2_weight, channel_weight, spatial_weight, nonlocal_weight:
            weights of the four terms.
        use_channel_mask: also weight ``L_feat`` by the channel mask.

    Returns:
        Scalar tensor.

    Example:
        >>> from mmstructkd.models.connectors import (
        ...     FBKDStudentConnector, FBKDTeacherConnector)
        >>> conn_S = FBKDStudentConnector(16, teacher_channels=32)
        >>> conn_T = FBKDTeacherConnector(32)
        >>> value = fbkd_loss(conn_S(torch.randn(2, 16, 8, 8)),
        ...                   conn_T(torch.randn(2, 32, 8, 8)))
    """
    (s_spatial_mask, s_channel_mask, s_channel_pool, s_spatial_pool,
     s_relation, s_feat) = _unpack('s_input', s_input, STUDENT_FIELDS,
                                   'FBKDStudentConnector')
    (t_spatial_mask, t_channel_mask, t_spatial_pool, t_relation,
     t_feat) = _unpack('t_input', t_input, TEACHER_FIELDS,
                       'FBKDTeacherConnector')
    hint = ('Record student and teacher maps of the same stride (the '
            'connectors keep the spatial size).')
    channel_hint = ('Set the FBKDStudentConnector\'s teacher_channels to '
                    f'{t_feat.shape[1]}.')
    check_map_pair(LOSS_NAME, s_feat, t_feat, hint=hint,
                   channels='channel counts', channel_hint=channel_hint)
    check_map_pair(LOSS_NAME, s_relation, t_relation, hint=hint,
                   channels='channel counts', channel_hint=channel_hint)
    t_feat = t_feat.detach()
    spatial_mask = ((s_spatial_mask + t_spatial_mask) / 2).detach()
    channel_mask = None
    if use_channel_mask:
        if s_channel_mask.shape != t_channel_mask.shape:
            raise ValueError(
                f'{LOSS_NAME}: use_channel_mask needs student and teacher '
                f'maps of the same channel count, got channel masks '
                f'{tuple(s_channel_mask.shape)} and '
                f'{tuple(t_channel_mask.shape)}.')
        channel_mask = ((s_channel_mask + t_channel_mask) / 2).detach()
    feat = masked_l2_distance(s_feat, t_feat, spatial_mask, channel_mask)
    norm = torch.linalg.vector_norm
    channel = norm(s_channel_pool - t_feat.mean(dim=(2, 3)))
    spatial = norm(s_spatial_pool - t_spatial_pool.detach())
    relation = norm(s_relation - t_relation)
    return (mask_l2_weight * feat + channel_weight * channel +
            spatial_weight * spatial + nonlocal_weight * relation)


@MODELS.register_module()
class FBKDLoss(nn.Module):
    """FBKD loss (attention-masked imitation plus relation distillation).

    See :func:`fbkd_loss`. ``s_input`` must be mapped through an
    ``FBKDStudentConnector`` and ``t_input`` through an
    ``FBKDTeacherConnector`` (one pair of connectors and one loss per FPN
    level, as in mmrazor's configs).

    Args:
        mask_l2_weight: weight of the masked feature distance (7e-5).
        channel_weight: weight of the channel-pooling distance (4e-3).
        spatial_weight: weight of the spatial-pooling distance (4e-3).
        nonlocal_weight: weight of the relation distance (7e-5).
        loss_weight: multiplier of the whole loss.
        use_channel_mask: also weight the feature distance by the channel
            mask (off in the authors' code and mmrazor).

    Example:
        >>> loss = FBKDLoss()
        >>> conn_S = FBKDStudentConnector(16, teacher_channels=32)
        >>> conn_T = FBKDTeacherConnector(32)
        >>> value = loss(conn_S(torch.randn(2, 16, 8, 8)),
        ...              conn_T(torch.randn(2, 32, 8, 8)))
    """

    def __init__(self,
                 mask_l2_weight: float = 7e-5,
                 channel_weight: float = 4e-3,
                 spatial_weight: float = 4e-3,
                 nonlocal_weight: float = 7e-5,
                 loss_weight: float = 1.0,
                 use_channel_mask: bool = False) -> None:
        super().__init__()
        self.mask_l2_weight = mask_l2_weight
        self.channel_weight = channel_weight
        self.spatial_weight = spatial_weight
        self.nonlocal_weight = nonlocal_weight
        self.loss_weight = loss_weight
        self.use_channel_mask = use_channel_mask

    def forward(self, s_input: Sequence[Tensor],
                t_input: Sequence[Tensor]) -> Tensor:
        return self.loss_weight * fbkd_loss(
            s_input, t_input, self.mask_l2_weight, self.channel_weight,
            self.spatial_weight, self.nonlocal_weight, self.use_channel_mask)
