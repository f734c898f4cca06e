"""Pearson-correlation distillation (PKD; Cao et al., NeurIPS 2022).

"PKD: General Distillation Framework for Object Detectors via Pearson
Correlation Coefficient". Every channel of the student's and the teacher's
feature maps is standardised (zero mean, unit variance over the batch and all
positions), then the standardised maps are compared with a mean squared
error. Standardising first removes the differences in magnitude between the
two networks' features (FPN activations of different detectors, or of a CNN
and a transformer, live on very different scales), so the student imitates
the *relations* between positions, not the raw values: per channel,
``mean (S_hat - T_hat)^2 / 2`` equals ``1 - r`` (up to the unbiased/biased
variance factor ``(M - 1) / M``), with ``r`` the Pearson correlation of the
channel's M values.
"""
from typing import Optional, Sequence

import torch.nn.functional as F
from torch import Tensor

from mmstructkd.registry import MODELS
from .utils import (LevelSumLoss, check_map_pair, check_ndim, connector_hint,
                    float32_math)

LOSS_NAME = 'PKDLoss'

# Added to each channel's standard deviation (as in mmrazor's port).
STD_EPS = 1e-6
# Floor on the variance before its square root: a constant channel gets a
# zero (not NaN) gradient. Far below STD_EPS**2, so it never changes a value.
VAR_FLOOR = 1e-24


def standardize_channels(feats: Tensor, eps: float = STD_EPS) -> Tensor:
    """Standardise each channel of a map over its batch and positions.

    ``x_hat[n, c, h, w] = (x[n, c, h, w] - mu_c) / (sigma_c + eps)`` with
    ``mu_c`` the mean and ``sigma_c`` the unbiased standard deviation of
    the M = N*H*W values of channel c. A channel with a single value
    (N*H*W = 1) standardises to 0.

    Args:
        feats: map of shape (N, C, H, W).
        eps: added to the standard deviation.

    Returns:
        Tensor of the same shape.
    """
    # Reduced over (N, H, W) in place: no (C, N*H*W) copy to make and to
    # undo in the backward, which on small FPN levels cost more than the math.
    dims = (0, 2, 3)
    count = feats.numel() // feats.shape[1]
    centred = feats - feats.mean(dim=dims, keepdim=True)
    var = centred.pow(2).sum(dim=dims, keepdim=True) / max(count - 1, 1)
    std = var.clamp_min(VAR_FLOOR).sqrt()
    return centred / (std + eps)


@float32_math
def pearson_distillation_loss(preds_S: Tensor,
                              preds_T: Tensor,
                              resize_stu: bool = True) -> Tensor:
    """PKD loss between one student and one teacher feature map.

    ``L_pkd = 1 / (2 * N * C * H * W) * sum_{n,c,h,w}
    (S_hat[n,c,h,w] - T_hat[n,c,h,w])^2``, where ``S_hat`` and ``T_hat``
    are the maps standardised per channel over (N, H, W)
    (:func:`standardize_channels`: unbiased std, eps 1e-6 on the std).

    When the spatial sizes differ, the student map is resized to the
    teacher's (``resize_stu=True``) or the teacher's to the student's,
    bilinearly (``align_corners=False``), before standardising.

    Runs in float32 even under autocast. The teacher gets no gradient.

    Args:
        preds_S: student map, shape (N, C, H_S, W_S).
        preds_T: teacher map, shape (N, C, H_T, W_T).
        resize_stu: which side to resize when the sizes differ.

    Returns:
        Scalar tensor.

    Example:
        >>> feats_S = torch.randn(2, 256, 25, 34, requires_grad=True)
        >>> feats_T = torch.randn(2, 256, 50, 68)
        >>> pearson_distillation_loss(feats_S, feats_T).backward()
    """
    check_ndim(LOSS_NAME, 'preds_S', preds_S, 4)
    check_ndim(LOSS_NAME, 'preds_T', preds_T, 4)
    preds_T = preds_T.detach()
    if preds_S.shape[2:] != preds_T.shape[2:]:
        if resize_stu:
            preds_S = F.interpolate(preds_S, size=preds_T.shape[2:],
                                    mode='bilinear', align_corners=False)
        else:
            preds_T = F.interpolate(preds_T, size=preds_S.shape[2:],
                                    mode='bilinear', align_corners=False)
    check_map_pair(
        LOSS_NAME, preds_S, preds_T,
        hint='Student and teacher must be given the same batch.',
        channels='channel counts',
        channel_hint=connector_hint(preds_S, preds_T))
    diff = standardize_channels(preds_S) - standardize_channels(preds_T)
    return diff.pow(2).mean() / 2


@MODELS.register_module()
class PKDLoss(LevelSumLoss):
    """Pearson-correlation distillation loss (PKD).

    See :func:`pearson_distillation_loss`. Given a tuple of feature-pyramid
    levels, the result is the weighted sum over levels (each level
    standardised on its own). Student and teacher need the same channel
    count (add a ``ConvModuleConnector`` otherwise); spatial sizes may
    differ.

    Args:
        loss_weight: multiplier of the loss (mmrazor's COCO configs, one
            loss per FPN level: 6 for Faster R-CNN, 10 for RetinaNet).
        resize_stu: resize the student map to the teacher's size when they
            differ (True), else the teacher's to the student's.
        level_weights: one weight per pyramid level; all 1 when None.

    Example:
        >>> loss = PKDLoss(loss_weight=6.0)
        >>> fpn_S = tuple(torch.randn(2, 32, s, s) for s in (16, 8, 4))
        >>> fpn_T = tuple(torch.randn(2, 32, s, s) for s in (16, 8, 4))
        >>> value = loss(fpn_S, fpn_T)
    """

    LOSS_NAME = LOSS_NAME

    def __init__(self,
                 loss_weight: float = 1.0,
                 resize_stu: bool = True,
                 level_weights: Optional[Sequence[float]] = None) -> None:
        super().__init__(loss_weight, level_weights)
        self.resize_stu = resize_stu

    def level_loss(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        return pearson_distillation_loss(preds_S, preds_T, self.resize_stu)

