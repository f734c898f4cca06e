"""Channel-wise distillation (CWD; Shu et al., ICCV 2021).

Each channel of a map is turned into a distribution over positions, and the
student's is pulled towards the teacher's with a KL divergence: the student
learns where each channel (class or feature) is most active.
"""
import functools
from typing import Optional, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from mmstructkd.registry import MODELS
from .utils import (TensorOrLevels, check_ndim, check_same_shape,
                    float32_math, sum_over_levels)

LOSS_NAME = 'ChannelWiseDivergence'


@float32_math
def channel_wise_divergence(preds_S: Tensor,
                            preds_T: Tensor,
                            tau: float = 1.0) -> Tensor:
    """Channel-wise KL divergence between teacher and student maps.

    ``L_cwd = tau^2 / (N * C) * sum_{n,c} sum_{hw} pT (log pT - log pS)``
    with ``p = softmax(map / tau)`` over the H*W positions of each (n, c).

    Runs in float32 even under autocast. The teacher gets no gradient.

    Args:
        preds_S: student map (logits or features), shape (N, C, H, W).
        preds_T: teacher map, shape (N, C, H, W).
        tau: softmax temperature (paper on logits: 4; mmrazor port: 1).

    Returns:
        Scalar tensor.

    Example:
        >>> logits_S = torch.randn(2, 19, 33, 45, requires_grad=True)
        >>> logits_T = torch.randn(2, 19, 33, 45)
        >>> channel_wise_divergence(logits_S, logits_T, tau=4.0).backward()
    """
    check_ndim(LOSS_NAME, 'preds_S', preds_S, 4)
    check_ndim(LOSS_NAME, 'preds_T', preds_T, 4)
    check_same_shape(LOSS_NAME, preds_S, preds_T, dims=(0, ),
                     what='batch sizes')
    channels_S, channels_T = preds_S.shape[1], preds_T.shape[1]
    check_same_shape(
        LOSS_NAME, preds_S, preds_T, dims=(1, ),
        what='channel counts',
        hint='Add a connector that maps the student to the teacher\'s '
        'channels, e.g. dict(type=\'ConvModuleConnector\', '
        f'in_channel={channels_S}, out_channel={channels_T}, kernel_size=1) '
        'in the distiller\'s `connectors`.')
    check_same_shape(
        LOSS_NAME, preds_S, preds_T, dims=(2, 3),
        what='spatial sizes',
        hint='Each channel is a distribution over positions, so both maps '
        'need the same positions: resize one (e.g. F.interpolate) or record '
        'both at stages of the same stride.')
    batch, channels = preds_S.shape[:2]
    log_prob_S = F.log_softmax(preds_S.flatten(2) / tau, dim=2)
    log_prob_T = F.log_softmax(preds_T.detach().flatten(2) / tau, dim=2)
    kl = (log_prob_T.exp() * (log_prob_T - log_prob_S)).sum()
    return tau**2 * kl / (batch * channels)


@MODELS.register_module()
class ChannelWiseDivergence(nn.Module):
    """Channel-wise distillation loss (CWD).

    See :func:`channel_wise_divergence`. Given a tuple of feature-pyramid
    levels, the result is the weighted sum over levels (the detection
    setting: every FPN level, tau 1, weight 10).

    Args:
        tau: softmax temperature.
        loss_weight: multiplier of the loss.
        level_weights: one weight per pyramid level; all 1 when None.
    """

    def __init__(self,
                 tau: float = 1.0,
                 loss_weight: float = 1.0,
                 level_weights: Optional[Sequence[float]] = None) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'{LOSS_NAME}: tau must be > 0, got {tau}.')
        self.tau = tau
        self.loss_weight = loss_weight
        self.level_weights = level_weights

    def forward(self, preds_S: TensorOrLevels,
                preds_T: TensorOrLevels) -> Tensor:
        """Compute the weighted loss.

        Args:
            preds_S: student map (N, C, H, W) or a tuple of levels.
            preds_T: teacher map (N, C, H, W) or a tuple of levels.

        Returns:
            Scalar tensor, already multiplied by ``loss_weight``.
        """
        level_loss = functools.partial(channel_wise_divergence, tau=self.tau)
        loss = sum_over_levels(LOSS_NAME, level_loss, preds_S, preds_T,
                               self.level_weights)
        return self.loss_weight * loss
