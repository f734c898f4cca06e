"""DIST (relation distillation of class probabilities) against a naive
float64 version of its formula, written with loops over pixels and classes:
segmentation logits, FPN levels, anchor-stacked detection logits, resized
students, temperatures and term weights."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmstructkd.models.losses import DISTLoss, dist_relation_loss
from mmstructkd.registry import MODELS


def naive_pearson(a, b, eps=1e-8):
    """sum (a - mean a)(b - mean b) / (||a - mean a|| ||b - mean b|| + eps),
    one vector at a time."""
    a = a - a.sum() / a.numel()
    b = b - b.sum() / b.numel()
    return (a * b).sum() / (torch.sqrt((a * a).sum()) *
                            torch.sqrt((b * b).sum()) + eps)


def naive_rows(logits, tau, num_classes=None):
    """The list of per-position probability vectors, built one position
    (and one anchor) at a time: softmax over the K classes of logits/tau."""
    classes = num_classes or logits.shape[1]
    anchors = logits.shape[1] // classes
    rows = []
    if logits.dim() == 2:
        positions = [logits[n] for n in range(logits.shape[0])]
    else:
        positions = [logits[n, :, h, w] for n in range(logits.shape[0])
                     for h in range(logits.shape[2])
                     for w in range(logits.shape[3])]
    for scores in positions:
        for a in range(anchors):
            z = scores[a * classes:(a + 1) * classes] / tau
            rows.append(torch.exp(z) / torch.exp(z).sum())
    return rows


def naive_dist(logits_S, logits_T, tau=1.0, inter_weight=1.0,
               intra_weight=1.0, num_classes=None):
    """tau^2 (beta (1 - mean_rows rho) + gamma (1 - mean_classes rho))."""
    rows_S = naive_rows(logits_S, tau, num_classes)
    rows_T = naive_rows(logits_T, tau, num_classes)
    inter = sum(naive_pearson(s, t) for s, t in zip(rows_S, rows_T))
    inter = 1 - inter / len(rows_S)
    classes = rows_S[0].numel()
    intra = 0.0
    for k in range(classes):
        column_S = torch.stack([row[k] for row in rows_S])
        column_T = torch.stack([row[k] for row in rows_T])
        intra = intra + naive_pearson(column_S, column_T)
    intra = 1 - intra / classes
    return tau**2 * (inter_weight * inter + intra_weight * intra)


def random_logits(shape_S, shape_T=None, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    logits_S = 2 * torch.randn(*shape_S, generator=gen, dtype=dtype)
    logits_T = 3 * torch.randn(*(shape_T or shape_S), generator=gen,
                               dtype=dtype) + 1
    return logits_S, logits_T


def check_value_and_grad(value, leaf, ref, leaf64, rtol=1e-5):
    ref.backward()
    assert value.dtype == torch.float32
    assert math.isclose(value.item(), ref.item(), rel_tol=rtol), \
        (value.item(), ref.item())
    value.backward()
    torch.testing.assert_close(leaf.grad.double(), leaf64.grad, rtol=1e-4,
                               atol=1e-7)


@pytest.mark.parametrize('tau,inter_weight,intra_weight',
                         [(1.0, 1.0, 1.0), (4.0, 1.0, 1.0), (1.0, 2.0, 0.5),
                          (2.5, 0.0, 3.0), (0.5, 1.5, 0.0)])
def test_seg_value_and_gradient_match_naive(tau, inter_weight,
                                            intra_weight):
    logits_S, logits_T = random_logits((2, 5, 4, 6), seed=1)
    leaf = logits_S.clone().requires_grad_()
    value = dist_relation_loss(leaf, logits_T, tau=tau,
                               inter_weight=inter_weight,
                               intra_weight=intra_weight)
    leaf64 = logits_S.double().requires_grad_()
    ref = naive_dist(leaf64, logits_T.double(), tau, inter_weight,
                     intra_weight)
    check_value_and_grad(value, leaf, ref, leaf64)


def test_module_applies_all_weights_and_tau():
    logits_S, logits_T = random_logits((2, 4, 5, 3), seed=2)
    leaf = logits_S.clone().requires_grad_()
    loss = DISTLoss(tau=3.0, inter_weight=0.7, intra_weight=1.3,
                    loss_weight=2.5)
    value = loss(leaf, logits_T)
    leaf64 = logits_S.double().requires_grad_()
    ref = 2.5 * naive_dist(leaf64, logits_T.double(), 3.0, 0.7, 1.3)
    check_value_and_grad(value, leaf, ref, leaf64)


def test_terms_are_one_minus_pearson_correlation():
    # An independent reference: torch.corrcoef on the rows and columns.
    logits_S, logits_T = random_logits((1, 6, 5, 4), seed=3,
                                       dtype=torch.float64)
    rows_S = F.softmax(logits_S.permute(0, 2, 3, 1).reshape(-1, 6), dim=1)
    rows_T = F.softmax(logits_T.permute(0, 2, 3, 1).reshape(-1, 6), dim=1)

    def corr(a, b):
        return torch.corrcoef(torch.stack([a, b]))[0, 1]

    inter = 1 - torch.stack([corr(s, t) for s, t in zip(rows_S, rows_T)
                             ]).mean()
    intra = 1 - torch.stack([corr(rows_S[:, k], rows_T[:, k])
                             for k in range(6)]).mean()
    only_inter = dist_relation_loss(logits_S, logits_T, intra_weight=0.0)
    only_intra = dist_relation_loss(logits_S, logits_T, inter_weight=0.0)
    assert math.isclose(only_inter.item(), inter.item(), rel_tol=1e-6)
    assert math.isclose(only_intra.item(), intra.item(), rel_tol=1e-6)
    # The two terms measure different things.
    assert not math.isclose(inter.item(), intra.item(), rel_tol=1e-2)


def test_identical_logits_give_zero_and_different_do_not():
    logits_S, logits_T = random_logits((2, 5, 6, 7))
    assert dist_relation_loss(logits_T.clone(), logits_T).item() == \
        pytest.approx(0, abs=1e-6)
    assert dist_relation_loss(logits_S, logits_T).item() > 0.2


@pytest.mark.parametrize('container', [tuple, list])
def test_fpn_levels_are_summed_with_level_weights(container):
    sizes = [(8, 8), (4, 4), (2, 2), (1, 1)]
    levels = [random_logits((2, 3, h, w), seed=h) for h, w in sizes]
    levels_S = container(s.clone().requires_grad_() for s, _ in levels)
    levels_T = container(t for _, t in levels)
    weights = [1.0, 0.5, 2.0, 1.5]
    loss = DISTLoss(tau=2.0, inter_weight=1.5, intra_weight=0.5,
                    loss_weight=3.0, level_weights=weights)
    value = loss(levels_S, levels_T)
    value.backward()
    leaves64 = [s.detach().double().requires_grad_() for s in levels_S]
    # Each level with its own intra-class relation, then the weighted sum.
    ref = 3.0 * sum(w * naive_dist(s, t.double(), 2.0, 1.5, 0.5)
                    for w, s, t in zip(weights, leaves64, levels_T))
    ref.backward()
    assert math.isclose(value.item(), ref.item(), rel_tol=1e-5)
    for level, level64 in zip(levels_S, leaves64):
        torch.testing.assert_close(level.grad.double(), level64.grad,
                                   rtol=1e-4, atol=1e-7)
    # Not the loss of the levels pooled into one set of rows.
    pooled = naive_dist(
        torch.cat([s.detach().double().permute(0, 2, 3, 1).reshape(-1, 3)
                   for s in levels_S]),
        torch.cat([t.double().permute(0, 2, 3, 1).reshape(-1, 3)
                   for t in levels_T]), 2.0, 1.5, 0.5)
    assert not math.isclose(value.item(), 3.0 * sum(weights) * pooled.item(),
                            rel_tol=1e-3)


def test_anchor_stacked_detection_logits_match_naive():
    # A RetinaNet-like head: 3 anchors x 4 classes, channel a*K + k.
    logits_S, logits_T = random_logits((2, 12, 3, 5), seed=4)
    leaf = logits_S.clone().requires_grad_()
    value = DISTLoss(tau=2.0, num_classes=4)(leaf, logits_T)
    leaf64 = logits_S.double().requires_grad_()
    ref = naive_dist(leaf64, logits_T.double(), 2.0, num_classes=4)
    check_value_and_grad(value, leaf, ref, leaf64)
    # Without num_classes the 12 channels are one softmax: another value.
    assert not math.isclose(value.item(), DISTLoss(tau=2.0)(
        logits_S, logits_T).item(), rel_tol=1e-3)


def test_two_dimensional_logits_are_rows():
    logits_S, logits_T = random_logits((7, 5), seed=5)
    leaf = logits_S.clone().requires_grad_()
    value = dist_relation_loss(leaf, logits_T, tau=1.5)
    leaf64 = logits_S.double().requires_grad_()
    ref = naive_dist(leaf64, logits_T.double(), 1.5)
    check_value_and_grad(value, leaf, ref, leaf64)


@pytest.mark.parametrize('resize_stu', [True, False])
def test_different_sizes_resize_one_side_bilinearly(resize_stu):
    logits_S, logits_T = random_logits((2, 4, 3, 5), (2, 4, 6, 9), seed=6)
    leaf = logits_S.clone().requires_grad_()
    value = DISTLoss(resize_stu=resize_stu)(leaf, logits_T)
    leaf64 = logits_S.double().requires_grad_()
    if resize_stu:
        ref = naive_dist(F.interpolate(leaf64, size=(6, 9), mode='bilinear',
                                       align_corners=False),
                         logits_T.double())
    else:
        ref = naive_dist(leaf64, F.interpolate(
            logits_T.double(), size=(3, 5), mode='bilinear',
            align_corners=False))
    check_value_and_grad(value, leaf, ref, leaf64)
    other = DISTLoss(resize_stu=not resize_stu)(logits_S, logits_T)
    assert not math.isclose(value.item(), other.item(), rel_tol=1e-3)


def test_constant_logits_stay_finite():
    # Uniform probabilities: zero variance rows and columns correlate 0.
    logits_S = torch.zeros(2, 3, 4, 4, requires_grad=True)
    value = dist_relation_loss(logits_S, torch.randn(2, 3, 4, 4))
    value.backward()
    assert value.item() == pytest.approx(2.0)
    assert torch.isfinite(logits_S.grad).all()


def test_half_precision_and_autocast_keep_float32_math():
    logits_S, logits_T = random_logits((2, 4, 5, 6), seed=7)
    half_S = logits_S.to(torch.bfloat16).requires_grad_()
    half_T = logits_T.to(torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = dist_relation_loss(half_S, half_T, tau=2.0)
    value.backward()
    ref = naive_dist(half_S.double(), half_T.double(), 2.0)
    assert value.dtype == torch.float32
    assert math.isclose(value.item(), ref.item(), rel_tol=1e-5)
    assert half_S.grad.dtype == torch.bfloat16


def test_teacher_gets_no_gradient():
    logits_S, logits_T = random_logits((1, 3, 4, 5), (1, 3, 8, 10))
    logits_S.requires_grad_()
    logits_T.requires_grad_()
    for resize_stu in (True, False):
        dist_relation_loss(logits_S, logits_T,
                           resize_stu=resize_stu).backward()
    assert logits_T.grad is None and logits_S.grad is not None


def test_class_count_mismatch_names_both_shapes():
    with pytest.raises(ValueError) as err:
        DISTLoss()(torch.randn(2, 19, 8, 16), torch.randn(2, 21, 8, 16))
    message = str(err.value)
    assert 'DISTLoss' in message and 'numbers of classes' in message
    assert '(2, 19, 8, 16)' in message and '(2, 21, 8, 16)' in message
    # Also on one level of a pyramid.
    with pytest.raises(ValueError, match=r'DISTLoss.*classes.*\(2, 27, 2, 2\)'
                       r'.*\(2, 36, 2, 2\)'):
        DISTLoss(num_classes=3)(
            (torch.randn(2, 27, 4, 4), torch.randn(2, 27, 2, 2)),
            (torch.randn(2, 27, 4, 4), torch.randn(2, 36, 2, 2)))


def test_other_input_errors():
    logits_S, logits_T = random_logits((2, 6, 4, 4))
    with pytest.raises(ValueError, match=r'DISTLoss: num_classes=4 does not '
                       r'divide the 6 channels.*\(2, 6, 4, 4\)'):
        DISTLoss(num_classes=4)(logits_S, logits_T)
    with pytest.raises(ValueError, match=r'DISTLoss.*batch.*\(2, 6, 4, 4\).*'
                       r'\(1, 6, 4, 4\)'):
        DISTLoss()(logits_S, logits_T[:1])
    with pytest.raises(ValueError, match=r'DISTLoss: preds_S must be class '
                       r'logits.*\(6, 4, 4\)'):
        DISTLoss()(logits_S[0], logits_T[0])
    with pytest.raises(ValueError, match='DISTLoss.*student has 2 feature '
                       'levels and teacher has 1'):
        DISTLoss()((logits_S, logits_S), (logits_T, ))
    with pytest.raises(ValueError, match='DISTLoss: tau must be > 0'):
        DISTLoss(tau=0.0)
    with pytest.raises(ValueError, match='DISTLoss: num_classes must be'):
        DISTLoss(num_classes=0)


def test_registry_builds_the_loss():
    loss = MODELS.build(
        dict(type='mmstructkd.DISTLoss', tau=2.0, inter_weight=0.5,
             intra_weight=2.0, loss_weight=3.0, num_classes=3))
    assert isinstance(loss, DISTLoss)
    assert (loss.tau, loss.inter_weight, loss.intra_weight,
            loss.loss_weight, loss.num_classes) == (2.0, 0.5, 2.0, 3.0, 3)
