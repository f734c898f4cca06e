"""Masked generative distillation (MGD; Yang et al., ECCV 2022).

"Masked Generative Distillation". Rather than imitating the teacher's
feature map directly, the student's map is randomly masked and a small
generator must *reconstruct* the teacher's full map from what is left; the
student learns features from which the teacher's can be recovered. The
masking and the generator live in the student-side connector
(:class:`mmstructkd.models.connectors.MGDConnector`, trained with the student,
dropped at export); this file holds only the reconstruction loss between the
generated map and the teacher's.
"""
from typing import Optional, Sequence

from torch import Tensor

from mmstructkd.registry import MODELS
from .utils import LevelSumLoss, check_map_pair, float32_math

LOSS_NAME = 'MGDLoss'


@float32_math
def masked_generative_loss(preds_S: Tensor,
                           preds_T: Tensor,
                           alpha_mgd: float = 2e-5) -> Tensor:
    """MGD reconstruction loss between generated and teacher maps.

    ``L_mgd = alpha_mgd / N * sum_{n,c,h,w} (G[n,c,h,w] - T[n,c,h,w])^2``:
    a squared error *summed* over channels and positions and averaged over
    the batch only (as in the paper and mmrazor), so its scale grows with
    C*H*W; the small ``alpha_mgd`` (2e-5 for detection FPNs in the paper
    and mmrazor) compensates.

    Runs in float32 even under autocast. The teacher gets no gradient.

    Args:
        preds_S: generated map G (the MGD connector's output), shape
            (N, C, H, W).
        preds_T: teacher map, same shape.
        alpha_mgd: weight of the summed squared error.

    Returns:
        Scalar tensor.

    Example:
        >>> generated = torch.randn(2, 256, 25, 34, requires_grad=True)
        >>> feats_T = torch.randn(2, 256, 25, 34)
        >>> masked_generative_loss(generated, feats_T).backward()
    """
    check_map_pair(
        LOSS_NAME, preds_S, preds_T,
        hint='The generator keeps the student map\'s size: record student '
        'and teacher maps of the same stride.',
        channels='channel counts',
        channel_hint='Set the MGDConnector\'s teacher_channels to '
        f'{preds_T.shape[1]} (and student_channels to the student\'s own '
        'count); the loss must be given the connector\'s output.')
    batch = preds_S.shape[0]
    return alpha_mgd * (preds_S - preds_T.detach()).pow(2).sum() / batch


@MODELS.register_module()
class MGDLoss(LevelSumLoss):
    """Masked generative distillation loss (MGD).

    See :func:`masked_generative_loss`. ``preds_S`` must be the output of
    an ``MGDConnector`` on the student's map (mapping
    ``connector='...'``). Given a tuple of feature-pyramid levels, the
    result is the weighted sum over levels.

    Args:
        alpha_mgd: weight of the summed squared error (paper, detection:
            2e-5).
        loss_weight: extra multiplier of the loss (1 in mmrazor, where
            ``alpha_mgd`` is the only weight).
        level_weights: one weight per pyramid level; all 1 when None.
    """

    LOSS_NAME = LOSS_NAME

    def __init__(self,
                 alpha_mgd: float = 2e-5,
                 loss_weight: float = 1.0,
                 level_weights: Optional[Sequence[float]] = None) -> None:
        super().__init__(loss_weight, level_weights)
        if alpha_mgd <= 0:
            raise ValueError(
                f'{LOSS_NAME}: alpha_mgd must be > 0, got {alpha_mgd}.')
        self.alpha_mgd = alpha_mgd

    def level_loss(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        return masked_generative_loss(preds_S, preds_T, self.alpha_mgd)
