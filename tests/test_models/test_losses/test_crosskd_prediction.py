"""CrossKD's prediction losses against naive float64 loops, and their box
decoding against mmdet's own coders and anchors."""
import math

import pytest
import torch

from mmstructkd.models.losses import (BoxDistributionKLLoss,
                                      BoxGIoUDistillLoss, KDQualityFocalLoss)
from mmstructkd.models.losses.crosskd_prediction import (
    aligned_giou, box_giou_distillation_loss, delta_boxes, distance_boxes,
    distribution_kl_loss, kd_quality_focal_loss)
from mmstructkd.registry import MODELS

RETINA_RATIOS = [r for r in (0.5, 1.0, 2.0) for _ in range(3)]


def randn(*shape, seed=0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=gen, dtype=torch.float64)


def soft_count(levels_T, num_classes):
    """sum over anchors of max_c sigmoid, at least 1 (a plain loop)."""
    total = 0.0
    for t in levels_T:
        n, channels, h, w = t.shape
        anchors = channels // num_classes
        for i in range(n):
            for a in range(anchors):
                for y in range(h):
                    for x in range(w):
                        scores = t[i, a * num_classes:(a + 1) * num_classes,
                                   y, x]
                        total += float(torch.sigmoid(scores).max())
    return max(total, 1.0)


def naive_qfl(levels_S, levels_T, num_classes, beta):
    total = 0.0
    for s, t in zip(levels_S, levels_T):
        for p_logit, q_logit in zip(s.reshape(-1), t.reshape(-1)):
            p, q = torch.sigmoid(p_logit), torch.sigmoid(q_logit)
            bce = -(q * torch.log(p) + (1 - q) * torch.log(1 - p))
            total = total + bce * torch.abs(p - q)**beta
    return total / soft_count(levels_T, num_classes)


def test_quality_focal_value_and_gradient_match_naive():
    levels_S = [randn(2, 6, 3, 4, seed=1), randn(2, 6, 2, 2, seed=2)]
    levels_T = [randn(2, 6, 3, 4, seed=3), randn(2, 6, 2, 2, seed=4)]
    leaves = [s.clone().requires_grad_() for s in levels_S]
    value = kd_quality_focal_loss(leaves, levels_T, num_classes=3, beta=2.0)
    value.backward()
    ref_leaves = [s.clone().requires_grad_() for s in levels_S]
    ref = naive_qfl(ref_leaves, levels_T, num_classes=3, beta=2.0)
    ref.backward()
    torch.testing.assert_close(value, ref)
    for leaf, ref_leaf in zip(leaves, ref_leaves):
        torch.testing.assert_close(leaf.grad, ref_leaf.grad)


def test_quality_focal_is_zero_on_the_teacher_and_teacher_gets_no_grad():
    t = randn(2, 4, 3, 3, seed=5).requires_grad_()
    assert float(kd_quality_focal_loss(t.detach(), t)) == 0.0
    s = randn(2, 4, 3, 3, seed=6).requires_grad_()
    kd_quality_focal_loss(s, t).backward()
    assert t.grad is None and s.grad.abs().sum() > 0


def naive_giou(a, b):
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * \
        max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    hull = (max(ax2, bx2) - min(ax1, bx1)) * (max(ay2, by2) - min(ay1, by1))
    return inter / union - (hull - union) / hull


def test_aligned_giou_matches_naive_and_is_one_on_equal_boxes():
    a = torch.tensor([[0., 0., 2., 2.], [0., 0., 1., 1.], [0., 0., 1., 3.]],
                     dtype=torch.float64)
    b = torch.tensor([[1., 1., 3., 3.], [2., 2., 3., 3.], [0., 0., 1., 3.]],
                     dtype=torch.float64)
    values = aligned_giou(a, b, eps=0.0)
    for i in range(3):
        assert float(values[i]) == pytest.approx(
            naive_giou(a[i].tolist(), b[i].tolist()))
    assert float(values[2]) == pytest.approx(1.0)


def test_distance_boxes_are_those_of_gfl_integral_and_coder():
    from mmdet.models.dense_heads.gfl_head import Integral
    from mmdet.models.task_modules.coders import DistancePointBBoxCoder
    reg_max = 7
    preds = randn(1, 4 * (reg_max + 1), 2, 3, seed=7).float()
    boxes = distance_boxes(preds)  # (1, 1, 2, 3, 4), around each point
    flat = preds.permute(0, 2, 3, 1).reshape(-1, 4 * (reg_max + 1))
    sides = Integral(reg_max)(flat)
    points = torch.zeros(len(flat), 2)
    expected = DistancePointBBoxCoder().decode(points, sides)
    torch.testing.assert_close(boxes.reshape(-1, 4), expected)


def test_delta_boxes_give_the_giou_of_mmdet_decoded_anchor_boxes():
    """Unit anchors of the right aspect ratio give exactly the GIoU of the
    boxes mmdet decodes from RetinaNet's real anchors."""
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
    from mmdet.models.task_modules.prior_generators import AnchorGenerator
    from mmdet.structures.bbox import bbox_overlaps
    generator = AnchorGenerator(strides=[8], ratios=[0.5, 1.0, 2.0],
                                octave_base_scale=4, scales_per_octave=3)
    h, w = 3, 4
    anchors = generator.grid_priors([(h, w)], device='cpu')[0]
    num_anchors = generator.num_base_priors[0]
    deltas_S = randn(2, num_anchors * 4, h, w, seed=8, scale=0.5).float()
    deltas_T = randn(2, num_anchors * 4, h, w, seed=9, scale=0.5).float()
    coder = DeltaXYWHBBoxCoder(target_means=[0.] * 4, target_stds=[1.] * 4)

    def decoded(deltas):
        flat = deltas.permute(0, 2, 3, 1).reshape(2, -1, 4)
        return torch.stack([coder.decode(anchors, d) for d in flat])

    expected = bbox_overlaps(decoded(deltas_S), decoded(deltas_T),
                             mode='giou', is_aligned=True)
    ours = aligned_giou(delta_boxes(deltas_S, RETINA_RATIOS),
                        delta_boxes(deltas_T, RETINA_RATIOS))
    # ours: (N, A, H, W); mmdet's order per image: (H, W, A).
    torch.testing.assert_close(ours.permute(0, 2, 3, 1).reshape(2, -1),
                               expected, atol=1e-5, rtol=1e-5)


def naive_box_loss(boxes_S, boxes_T, levels_C, num_classes):
    """sum over anchors of w * (1 - GIoU), over the soft count."""
    total = 0.0
    for b_S, b_T, c in zip(boxes_S, boxes_T, levels_C):
        weights = c.reshape(c.shape[0], -1, num_classes, *c.shape[2:]) \
            .sigmoid().amax(2)
        giou = aligned_giou(b_S, b_T)
        total = total + (weights * (1 - giou)).sum()
    return total / soft_count(levels_C, num_classes)


@pytest.mark.parametrize('coding', ['distance', 'delta'])
def test_box_giou_loss_matches_its_definition(coding):
    classes, anchors = (4, 1) if coding == 'distance' else (2, 9)
    channels = 4 * 8 if coding == 'distance' else 4 * anchors
    shapes = [(2, channels, 3, 3), (2, channels, 2, 1)]
    levels_S = [randn(*s, seed=10 + i) for i, s in enumerate(shapes)]
    levels_T = [randn(*s, seed=20 + i) for i, s in enumerate(shapes)]
    levels_C = [randn(2, classes * anchors, *s[2:], seed=30 + i)
                for i, s in enumerate(shapes)]
    ratios = RETINA_RATIOS if coding == 'delta' else None
    loss = BoxGIoUDistillLoss(box_coding=coding, num_classes=classes,
                              anchor_aspect_ratios=ratios, loss_weight=2.0)
    leaves = [s.clone().requires_grad_() for s in levels_S]
    value = loss(leaves, levels_T, levels_C)
    value.backward()
    if coding == 'distance':
        decode = distance_boxes
    else:
        def decode(x):
            return delta_boxes(x, ratios)
    ref = naive_box_loss([decode(s) for s in levels_S],
                         [decode(t) for t in levels_T], levels_C, classes)
    torch.testing.assert_close(value, 2.0 * ref)
    assert all(leaf.grad.abs().sum() > 0 for leaf in leaves)
    # Identical boxes: no loss.
    same = box_giou_distillation_loss(levels_T, levels_T, levels_C, coding,
                                      classes, ratios)
    # (up to the eps of the GIoU denominators)
    assert float(same) == pytest.approx(0.0, abs=1e-4)


def test_distribution_kl_matches_naive_loop():
    bins = 5
    s, t = randn(1, 4 * bins, 2, 2, seed=40), randn(1, 4 * bins, 2, 2,
                                                     seed=41)
    scores = randn(1, 3, 2, 2, seed=42)
    tau = 2.0
    value = distribution_kl_loss(s, t, scores, tau)
    total, count = 0.0, 0.0
    for y in range(2):
        for x in range(2):
            weight = float(torch.sigmoid(scores[0, :, y, x]).max())
            count += weight
            kls = []
            for side in range(4):
                p_T = torch.softmax(t[0, side * bins:(side + 1) * bins, y, x]
                                    / tau, 0)
                p_S = torch.softmax(s[0, side * bins:(side + 1) * bins, y, x]
                                    / tau, 0)
                kls.append(float((p_T * (p_T / p_S).log()).sum()) * tau**2)
            total += weight * sum(kls) / 4
    assert float(value) == pytest.approx(total / max(count, 1.0))
    assert float(distribution_kl_loss(t, t, scores)) == pytest.approx(
        0.0, abs=1e-9)


def test_losses_build_from_the_registry_and_check_shapes():
    for cfg in (dict(type='KDQualityFocalLoss', beta=1),
                dict(type='BoxGIoUDistillLoss', box_coding='delta'),
                dict(type='BoxDistributionKLLoss', tau=1)):
        loss = MODELS.build(dict(cfg, _scope_='mmstructkd'))
        assert isinstance(loss, (KDQualityFocalLoss, BoxGIoUDistillLoss,
                                 BoxDistributionKLLoss))
    with pytest.raises(ValueError, match='box_coding'):
        BoxGIoUDistillLoss(box_coding='corners')
    with pytest.raises(ValueError, match='KDQualityFocalLoss'):
        KDQualityFocalLoss()(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match='anchor_aspect_ratios'):
        BoxGIoUDistillLoss(box_coding='delta', num_classes=1,
                           anchor_aspect_ratios=[1.0, 2.0])(
            torch.zeros(1, 12, 2, 2), torch.zeros(1, 12, 2, 2),
            torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match='num_classes'):
        # 9 anchors of boxes but scores read as one anchor of 9 classes.
        BoxGIoUDistillLoss(box_coding='delta')(
            torch.zeros(1, 36, 2, 2), torch.zeros(1, 36, 2, 2),
            torch.zeros(1, 9, 2, 2))
    assert math.isfinite(float(KDQualityFocalLoss()(
        torch.full((1, 2, 1, 1), 50.), torch.full((1, 2, 1, 1), -50.))))
