"""Channel-wise distillation (CWD; Shu et al., ICCV 2021).

Each channel of a map is turned into a distribution over positions, and the
student's is pulled towards the teacher's with a KL divergence: the student
learns where each channel (class or feature) is most active.
"""
from typing import Optional, Sequence

import torch.nn.functional as F
from torch import Tensor

from mmstructkd.registry import MODELS
from .utils import (LevelSumLoss, check_map_pair, connector_hint,
                    float32_math)

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
    check_map_pair(
        LOSS_NAME, preds_S, preds_T,
        hint='Each channel is a distribution over positions, so both maps '
        'need the same positions: resize one (e.g. F.interpolate) or record '
        'both at stages of the same stride.',
        channels='channel counts',
        channel_hint=connector_hint(preds_S, preds_T))
    batch, channels = preds_S.shape[:2]
    log_prob_S = F.log_softmax(preds_S.flatten(2) / tau, dim=2)
    log_prob_T = F.log_softmax(preds_T.detach().flatten(2) / tau, dim=2)
    kl = (log_prob_T.exp() * (log_prob_T - log_prob_S)).sum()
    return tau**2 * kl / (batch * channels)


@MODELS.register_module()
class ChannelWiseDivergence(LevelSumLoss):
    """Channel-wise distillation loss (CWD).

    See :func:`channel_wise_divergence`. Given a tuple of feature-pyramid
    levels, the result is the weighted sum over levels (the detection
    setting: every FPN level, tau 1, weight 10).

    Args:
        tau: softmax temperature.
        loss_weight: multiplier of the loss.
        level_weights: one weight per pyramid level; all 1 when None.
    """

    LOSS_NAME = LOSS_NAME

    def __init__(self,
                 tau: float = 1.0,
                 loss_weight: float = 1.0,
                 level_weights: Optional[Sequence[float]] = None) -> None:
        super().__init__(loss_weight, level_weights)
        if tau <= 0:
            raise ValueError(f'{LOSS_NAME}: tau must be > 0, got {tau}.')
        self.tau = tau

    def level_loss(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        return channel_wise_divergence(preds_S, preds_T, self.tau)
