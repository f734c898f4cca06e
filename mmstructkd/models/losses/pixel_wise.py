"""Pixel-wise distillation of SKD.

Y. Liu, K. Chen, C. Liu, Z. Qin, Z. Luo, J. Wang, *Structured Knowledge
Distillation for Semantic Segmentation*, CVPR 2019. Each pixel's class
distribution of the student is pulled towards the teacher's with a KL
divergence on temperature-softened logits (:func:`pixel_wise_kl`). The
per-pixel divergence (:func:`pixel_kl_map`) is also what the boundary loss
weights and what the visualisation shows.
"""
import torch.nn.functional as F
from torch import Tensor, nn

from mmstructkd.registry import MODELS
from .utils import check_map_pair, float32_math

LOSS_NAME = 'PixelWiseLoss'


@float32_math
def pixel_kl_map(logits_S: Tensor, logits_T: Tensor,
                 tau: float = 1.0) -> Tensor:
    """Per-pixel KL divergence between teacher and student class scores.

    ``kl[n, h, w] = tau^2 * sum_k pT_k (log pT_k - log pS_k)`` with
    ``p = softmax(logits / tau)`` over the K classes. Its mean over
    ``n, h, w`` is the pixel-wise loss (:func:`pixel_wise_kl`). No shape
    checks: callers check the shapes with their own loss's name.

    Args:
        logits_S: student logits (N, K, H, W).
        logits_T: teacher logits (N, K, H, W); no gradient reaches it.
        tau: temperature.

    Returns:
        Tensor: per-pixel divergences of shape (N, H, W).
    """
    log_p_S = F.log_softmax(logits_S / tau, dim=1)
    log_p_T = F.log_softmax(logits_T.detach() / tau, dim=1)
    # xlogy-style: log_softmax is finite, so pT = 0 gives 0 * finite = 0.
    return tau**2 * (log_p_T.exp() * (log_p_T - log_p_S)).sum(dim=1)


@float32_math
def pixel_wise_kl(preds_S: Tensor,
                  preds_T: Tensor,
                  tau: float = 1.0) -> Tensor:
    """Pixel-wise KL divergence between teacher and student class maps.

    ``L_pi = tau^2 * mean_{n,h,w} sum_k pT_k (log pT_k - log pS_k)`` with
    ``p = softmax(logits / tau)`` over the K classes.

    The official SKD code sums over the batch (and averages over pixels);
    here the batch is averaged too, so the loss weight does not depend on the
    batch size. Runs in float32 even under autocast. The teacher gets no
    gradient.

    Args:
        preds_S: student logits, shape (N, K, H, W).
        preds_T: teacher logits, shape (N, K, H, W).
        tau: softmax temperature.

    Returns:
        Scalar tensor; 0 when the two class maps agree everywhere.

    Example:
        >>> logits = torch.randn(1, 4, 8, 8)
        >>> float(pixel_wise_kl(logits, logits.clone()))
        0.0
    """
    check_map_pair(
        LOSS_NAME, preds_S, preds_T,
        hint='Resize the logits to a common size (e.g. F.interpolate) or '
        'record both at the same stage (e.g. the decode heads\' outputs).',
        channels='numbers of classes',
        channel_hint='Both must predict the same classes, in the same order.')
    return pixel_kl_map(preds_S, preds_T, tau).mean()


@MODELS.register_module()
class PixelWiseLoss(nn.Module):
    """Pixel-wise distillation loss of SKD on segmentation logits.

    See :func:`pixel_wise_kl` (batch-averaged, unlike the official code's
    batch sum).

    Args:
        tau: softmax temperature.
        loss_weight: multiplier of the loss (official: 10).
    """

    def __init__(self, tau: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'{LOSS_NAME}: tau must be > 0, got {tau}.')
        self.tau = tau
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """Compute the weighted loss.

        Args:
            preds_S: student logits (N, K, H, W).
            preds_T: teacher logits (N, K, H, W).

        Returns:
            Scalar tensor, already multiplied by ``loss_weight``.
        """
        return self.loss_weight * pixel_wise_kl(preds_S, preds_T, self.tau)
