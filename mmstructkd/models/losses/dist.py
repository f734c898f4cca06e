"""DIST: relation distillation of class predictions (Huang et al., 2022).

"Knowledge Distillation from A Stronger Teacher", NeurIPS 2022. Instead of
matching the teacher's class probabilities exactly (KL divergence), the
student matches their *relations*, measured with the Pearson correlation,
which ignores the shift and scale of each vector:

* inter-class relation: for every pixel (row), how the K class
  probabilities rise and fall together in student and teacher;
* intra-class relation: for every class (column), how its probability
  varies over all the pixels of the batch.

A much stronger teacher is often sharper or differently calibrated than a
small student can be; an exact match then hurts, a correlation does not.
"""
from typing import Optional, Sequence, Tuple, Union

import torch.nn.functional as F
from torch import Tensor

from mmstructkd.registry import MODELS
from .utils import LevelSumLoss, check_same_shape, float32_math

LOSS_NAME = 'DISTLoss'

# Added to the product of the two norms in the Pearson correlation (as in
# the DIST_KD code): a constant vector correlates 0 with anything.
PEARSON_EPS = 1e-8
# Floor on a sum of squares before its square root, so that a constant
# vector has a zero (not NaN) gradient. Far below PEARSON_EPS**2: it never
# changes a value that PEARSON_EPS does not already dominate.
SQUARES_FLOOR = 1e-30


def pearson_correlation(x: Tensor, y: Tensor,
                        dim: Union[int, Tuple[int, ...]]) -> Tensor:
    """Pearson correlation of ``x`` and ``y`` along ``dim`` (one dimension,
    or several taken together as one vector).

    ``rho(a, b) = sum_i a'_i b'_i / (||a'|| * ||b'|| + 1e-8)`` with
    ``a' = a - mean(a)``, ``b' = b - mean(b)`` (the means along ``dim``).

    Args:
        x: tensor of any shape.
        y: tensor of the same shape.
        dim: the dimension (or dimensions) whose entries are correlated.

    Returns:
        Tensor of the shape of ``x`` without ``dim``, values in [-1, 1].
    """
    x = x - x.mean(dim=dim, keepdim=True)
    y = y - y.mean(dim=dim, keepdim=True)
    norm_x = x.pow(2).sum(dim=dim).clamp_min(SQUARES_FLOOR).sqrt()
    norm_y = y.pow(2).sum(dim=dim).clamp_min(SQUARES_FLOOR).sqrt()
    return (x * y).sum(dim=dim) / (norm_x * norm_y + PEARSON_EPS)


def class_score_grid(logits: Tensor,
                     num_classes: Optional[int] = None) -> Tensor:
    """View class scores as a grid (N, A, K, L): K classes, L positions.

    (N, K, H, W) becomes (N, 1, K, H*W) and (N, K) becomes (N, 1, K, 1).
    With ``num_classes`` = K, a map of C = A*K channels holds A score
    vectors per pixel (the anchors of an mmdet one-stage head, channel
    ``a*K + k``, the layout its ``loss_by_feat`` reads) and becomes
    (N, A, K, H*W). Each (n, a, :, l) is one row of K scores. A view, not a
    copy: the classes stay off the innermost dimension, so the softmax and
    the sums over K run vectorised over the positions (rows of K = 3 scores
    laid out contiguously are about twice as slow).
    """
    batch, channels = logits.shape[:2]
    classes = channels if num_classes is None else num_classes
    return logits.reshape(batch, channels // classes, classes, -1)


def _checked_pair(preds_S: Tensor, preds_T: Tensor,
                  num_classes: Optional[int],
                  resize_stu: bool) -> Tuple[Tensor, Tensor]:
    """Shape checks, and the resize of one map when the sizes differ."""
    for name, preds in (('preds_S', preds_S), ('preds_T', preds_T)):
        if preds.dim() not in (2, 4):
            raise ValueError(
                f'{LOSS_NAME}: {name} must be class logits of shape (N, K, '
                f'H, W) or (N, K), got shape {tuple(preds.shape)}.')
    check_same_shape(
        LOSS_NAME, preds_S, preds_T, dims=(1, ), what='numbers of classes',
        hint='Both must score the same classes, in the same order (record '
        'the classification layers, e.g. decode_head.conv_seg).')
    if num_classes is not None and preds_S.shape[1] % num_classes:
        raise ValueError(
            f'{LOSS_NAME}: num_classes={num_classes} does not divide the '
            f'{preds_S.shape[1]} channels of preds_S (shape '
            f'{tuple(preds_S.shape)}); set num_classes to the number of '
            'classes the head scores per anchor.')
    if preds_S.dim() == 4 and preds_S.shape[2:] != preds_T.shape[2:]:
        if resize_stu:
            preds_S = F.interpolate(preds_S, size=preds_T.shape[2:],
                                    mode='bilinear', align_corners=False)
        else:
            preds_T = F.interpolate(preds_T, size=preds_S.shape[2:],
                                    mode='bilinear', align_corners=False)
    check_same_shape(
        LOSS_NAME, preds_S, preds_T, what='batch sizes',
        hint='Student and teacher must be given the same batch.')
    return preds_S, preds_T


@float32_math
def dist_relation_loss(preds_S: Tensor,
                       preds_T: Tensor,
                       tau: float = 1.0,
                       inter_weight: float = 1.0,
                       intra_weight: float = 1.0,
                       num_classes: Optional[int] = None,
                       resize_stu: bool = True) -> Tensor:
    """DIST loss between student and teacher class logits.

    The logits become a matrix of R rows of K class probabilities
    (one row per pixel of every image, R = N*H*W, or N*H*W*A with A
    anchors; :func:`class_score_grid` holds them as a grid, which is the
    same set of rows), ``P = softmax(rows / tau)`` over the K classes,
    and::

        L = tau^2 * (inter_weight * (1 - mean_r rho(P_S[r, :], P_T[r, :]))
                     + intra_weight * (1 - mean_k rho(P_S[:, k], P_T[:, k])))

    with ``rho`` the Pearson correlation (:func:`pearson_correlation`, 1e-8
    added to the product of the norms). The first term is the inter-class
    relation (per pixel, across classes), the second the intra-class
    relation (per class, across the R pixels of the whole batch). Each term
    lies in [0, 2]; both are 0 when student and teacher agree.

    When the spatial sizes differ, the student's logits are resized to the
    teacher's (``resize_stu=True``) or the teacher's to the student's,
    bilinearly (``align_corners=False``), before the softmax.

    Runs in float32 even under autocast. The teacher gets no gradient.

    Args:
        preds_S: student logits, shape (N, C, H_S, W_S), or (N, C).
        preds_T: teacher logits, shape (N, C, H_T, W_T), or (N, C).
        tau: softmax temperature.
        inter_weight: weight of the inter-class term (the paper's beta).
        intra_weight: weight of the intra-class term (the paper's gamma).
        num_classes: K when the C channels hold C / K score vectors per
            pixel (anchors of a one-stage detector head, channel
            ``a*K + k``); None: C = K.
        resize_stu: which side to resize when the sizes differ.

    Returns:
        Scalar tensor.

    Example:
        >>> logits_S = torch.randn(2, 19, 64, 128, requires_grad=True)
        >>> logits_T = torch.randn(2, 19, 64, 128)
        >>> dist_relation_loss(logits_S, logits_T).backward()
    """
    preds_S, preds_T = _checked_pair(preds_S, preds_T.detach(), num_classes,
                                     resize_stu)
    # (N, A, K, L): a row is (n, a, :, l), a class column is (:, :, k, :).
    prob_S = F.softmax(class_score_grid(preds_S, num_classes) / tau, dim=2)
    prob_T = F.softmax(class_score_grid(preds_T, num_classes) / tau, dim=2)
    inter = 1 - pearson_correlation(prob_S, prob_T, dim=2).mean()
    intra = 1 - pearson_correlation(prob_S, prob_T, dim=(0, 1, 3)).mean()
    return tau**2 * (inter_weight * inter + intra_weight * intra)


@MODELS.register_module()
class DISTLoss(LevelSumLoss):
    """DIST relation loss on segmentation or detection class logits.

    See :func:`dist_relation_loss`. Given a tuple (or list) of
    feature-pyramid levels (a detector's classification scores per FPN
    level), each level is one loss, with its own intra-class relation, and
    the result is their weighted sum (``level_weights``), as for the other
    FPN losses of this package.

    Args:
        tau: softmax temperature (1 in the DIST_KD segmentation code).
        inter_weight: weight of the inter-class term (beta, 1).
        intra_weight: weight of the intra-class term (gamma, 1).
        loss_weight: multiplier of the loss.
        num_classes: classes per score vector when a head stacks several
            (anchors) in its channels, e.g. 80 for a COCO RetinaNet whose
            ``retina_cls`` has 9 * 80 channels; None: every channel is a
            class.
        resize_stu: resize the student's logits to the teacher's size when
            they differ (True), else the teacher's to the student's.
        level_weights: one weight per pyramid level; all 1 when None.

    Example:
        >>> loss = DISTLoss(tau=1.0, loss_weight=1.0)
        >>> value = loss(torch.randn(2, 19, 64, 128),
        ...              torch.randn(2, 19, 64, 128))
    """

    LOSS_NAME = LOSS_NAME

    def __init__(self,
                 tau: float = 1.0,
                 inter_weight: float = 1.0,
                 intra_weight: float = 1.0,
                 loss_weight: float = 1.0,
                 num_classes: Optional[int] = None,
                 resize_stu: bool = True,
                 level_weights: Optional[Sequence[float]] = None) -> None:
        super().__init__(loss_weight, level_weights)
        if tau <= 0:
            raise ValueError(f'{LOSS_NAME}: tau must be > 0, got {tau}.')
        if num_classes is not None and num_classes < 1:
            raise ValueError(f'{LOSS_NAME}: num_classes must be a positive '
                             f'integer or None, got {num_classes}.')
        self.tau = tau
        self.inter_weight = inter_weight
        self.intra_weight = intra_weight
        self.num_classes = num_classes
        self.resize_stu = resize_stu

    def level_loss(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        return dist_relation_loss(preds_S, preds_T, self.tau,
                                  self.inter_weight, self.intra_weight,
                                  self.num_classes, self.resize_stu)
