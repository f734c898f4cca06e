"""Tests of the boundary distillation loss of BCD."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from mmstructkd.models.losses.boundary import (BoundaryLoss,
                                               boundary_weighted_kl,
                                               extract_boundary_map,
                                               pixel_kl_map)
from mmstructkd.models.losses.pixel_wise import pixel_wise_kl
from mmstructkd.registry import MODELS

NEIGHBOURS_8 = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                if (dy, dx) != (0, 0)]
NEIGHBOURS_4 = [(-1, 0), (1, 0), (0, -1), (0, 1)]


def naive_boundary_map(features,
                       neighbourhood=8,
                       reduction='max',
                       normalize='minmax',
                       eps=1e-3):
    """Pixel by pixel: cosine dissimilarity to clamped neighbours."""
    height, width = features.shape[-2:]
    offsets = NEIGHBOURS_8 if neighbourhood == 8 else NEIGHBOURS_4
    rows = []
    for y in range(height):
        row = []
        for x in range(width):
            here = features[:, :, y, x]  # (N, C): every image at once
            dissimilarities = []
            for dy, dx in offsets:
                # Outside the image the neighbour is the edge position.
                there = features[:, :, min(max(y + dy, 0), height - 1),
                                 min(max(x + dx, 0), width - 1)]
                cos = (here * there).sum(1) / (
                    here.norm(dim=1) * there.norm(dim=1))
                dissimilarities.append(1 - cos)
            stacked = torch.stack(dissimilarities)
            row.append(stacked.amax(0) if reduction ==
                       'max' else stacked.mean(0))
        rows.append(torch.stack(row, dim=-1))
    maps = torch.stack(rows, dim=-2)  # (N, H, W)
    top = maps.flatten(1).amax(1)[:, None, None]
    bottom = maps.flatten(1).amin(1)[:, None, None]
    if normalize == 'minmax':
        maps = (maps - bottom) / torch.clamp(top - bottom, min=eps)
    elif normalize == 'max':
        maps = maps / torch.clamp(top, min=eps)
    return maps[:, None]


def naive_weighted_kl(logits_S, logits_T, boundary, alpha, tau):
    """sum_k pT (log pT - log pS), weighted by (1 + alpha B) / mean."""
    weights = 1 + alpha * boundary[:, 0]
    weights = weights / weights.mean(dim=(1, 2), keepdim=True)
    p_T = torch.exp(logits_T / tau) / torch.exp(logits_T / tau).sum(
        1, keepdim=True)
    p_S = torch.exp(logits_S / tau) / torch.exp(logits_S / tau).sum(
        1, keepdim=True)
    kl = torch.einsum('nkhw->nhw', p_T * (p_T.log() - p_S.log()))
    return (weights * tau**2 * kl).mean()


def bilinear(x, size):
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False)


def piecewise_constant_features(seed=0, channels=16, height=23, width=29):
    """Three regions with random feature vectors plus tiny noise."""
    generator = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(
        torch.arange(height), torch.arange(width), indexing='ij')
    labels = (xs + ys > 20).long()  # a diagonal border
    labels[4:15, 16:25] = 2  # and a rectangle
    centres = torch.randn(3, channels, generator=generator)
    features = centres[labels].permute(2, 0, 1)[None]
    noise = 1e-3 * torch.randn(
        1, channels, height, width, generator=generator)
    return features + noise, labels


def border_mask(labels):
    """Positions with an 8-neighbour of another label (inside the image)."""
    height, width = labels.shape
    padded = F.pad(labels[None, None].float(), (1, 1, 1, 1),
                   mode='replicate')[0, 0]
    border = torch.zeros_like(labels, dtype=torch.bool)
    for dy, dx in NEIGHBOURS_8:
        shifted = padded[1 + dy:1 + dy + height, 1 + dx:1 + dx + width]
        border |= shifted != labels
    return border


@pytest.mark.parametrize('neighbourhood,reduction,normalize',
                         [(8, 'max', 'minmax'), (4, 'max', 'minmax'),
                          (8, 'mean', 'minmax'), (8, 'max', 'max')])
def test_boundary_map_peaks_on_region_borders(neighbourhood, reduction,
                                              normalize):
    features, labels = piecewise_constant_features()
    boundary = extract_boundary_map(
        features,
        neighbourhood=neighbourhood,
        reduction=reduction,
        normalize=normalize)[0, 0]
    if neighbourhood == 4:
        border = border_mask(labels) & ~_diagonal_only(labels)
    else:
        border = border_mask(labels)
    on_border, inside = boundary[border].mean(), boundary[~border].mean()
    # Interior includes the image edges: replicate padding, no boundary.
    assert inside < 0.01
    assert boundary[~border].max() < 0.05
    assert on_border > (0.5 if reduction == 'max' else 0.3)
    assert boundary.max() <= 1 + 1e-6 and boundary.min() >= -1e-6


def _diagonal_only(labels):
    """Positions whose only differing neighbours are diagonal."""
    height, width = labels.shape
    padded = F.pad(labels[None, None].float(), (1, 1, 1, 1),
                   mode='replicate')[0, 0]
    axis = torch.zeros_like(labels, dtype=torch.bool)
    for dy, dx in NEIGHBOURS_4:
        axis |= padded[1 + dy:1 + dy + height,
                       1 + dx:1 + dx + width] != labels
    return border_mask(labels) & ~axis


def test_boundary_map_of_flat_features_is_not_amplified_noise():
    features = torch.ones(1, 8, 9, 11) + 1e-4 * torch.randn(1, 8, 9, 11)
    assert extract_boundary_map(features).max() < 0.01


@pytest.mark.parametrize(
    'neighbourhood,reduction,normalize',
    list(itertools.product((4, 8), ('max', 'mean'), ('minmax', 'max', None))))
def test_boundary_map_matches_naive_values_and_gradients(
        neighbourhood, reduction, normalize):
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(
        2, 3, 5, 7, generator=generator,
        dtype=torch.float64).requires_grad_()
    kwargs = dict(
        neighbourhood=neighbourhood, reduction=reduction, normalize=normalize)
    expected = naive_boundary_map(features, **kwargs)
    value = extract_boundary_map(features, **kwargs)
    torch.testing.assert_close(value, expected)
    probe = torch.randn(expected.shape, generator=generator,
                        dtype=torch.float64)
    (grad_expected, ) = torch.autograd.grad((expected * probe).sum(),
                                            features)
    (grad, ) = torch.autograd.grad((value * probe).sum(), features)
    torch.testing.assert_close(grad, grad_expected)


def make_stages(seed=0):
    """Two stages; teacher and student differ in channels and resolution."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    feats_S = (rand(2, 3, 7, 9).requires_grad_(),
               rand(2, 4, 4, 5).requires_grad_())
    feats_T = (rand(2, 6, 9, 11), rand(2, 5, 5, 6))
    logits_S = rand(2, 4, 6, 8).requires_grad_()
    logits_T = rand(2, 4, 6, 8)
    return feats_S, feats_T, logits_S, logits_T


def naive_boundary_loss(feats_S,
                        feats_T,
                        logits_S,
                        logits_T,
                        stage_weights,
                        boundary_kd_weight,
                        alpha,
                        tau,
                        resize_to='teacher',
                        kd_stage_weights=None):
    maps_T = [naive_boundary_map(f) for f in feats_T]
    total = 0
    for weight, feat_S, map_T in zip(stage_weights, feats_S, maps_T):
        map_S = naive_boundary_map(feat_S)
        if resize_to == 'teacher':
            size = map_T.shape[-2:]
        else:
            size = (max(map_S.shape[-2], map_T.shape[-2]),
                    max(map_S.shape[-1], map_T.shape[-1]))
        total = total + weight * (
            (bilinear(map_S, size) - bilinear(map_T, size))**2).mean()
    size = logits_T.shape[-2:]
    kd_stage_weights = kd_stage_weights or stage_weights
    combined = sum(w * bilinear(m, size) for w, m in zip(
        kd_stage_weights, maps_T)) / sum(kd_stage_weights)
    return total + boundary_kd_weight * naive_weighted_kl(
        logits_S, logits_T, combined, alpha, tau)


@pytest.mark.parametrize('resize_to', ['teacher', 'larger'])
def test_boundary_loss_matches_naive_values_and_gradients(resize_to):
    feats_S, feats_T, logits_S, logits_T = make_stages()
    kwargs = dict(
        stage_weights=[1.0, 0.5], boundary_kd_weight=2.0, alpha=3.0, tau=2.0)
    expected = naive_boundary_loss(feats_S, feats_T, logits_S, logits_T,
                                   resize_to=resize_to, **kwargs)
    loss = BoundaryLoss(loss_weight=1.5, resize_to=resize_to, **kwargs)
    value = loss(feats_S, feats_T, logits_S, logits_T)
    torch.testing.assert_close(value, 1.5 * expected)
    inputs = list(feats_S) + [logits_S]
    grads_expected = torch.autograd.grad(1.5 * expected, inputs)
    grads = torch.autograd.grad(value, inputs)
    for grad, grad_expected in zip(grads, grads_expected):
        torch.testing.assert_close(grad, grad_expected)


def test_stage_weights_select_stages():
    feats_S, feats_T, logits_S, logits_T = make_stages(seed=3)
    kwargs = dict(
        stage_weights=[0.0, 1.0],
        kd_stage_weights=[1.0, 0.0],
        boundary_kd_weight=1.0,
        alpha=2.0,
        tau=1.0)
    expected = naive_boundary_loss(feats_S, feats_T, logits_S, logits_T,
                                   **kwargs)
    value = BoundaryLoss(**kwargs)(feats_S, feats_T, logits_S, logits_T)
    torch.testing.assert_close(value, expected)
    value.backward()
    assert feats_S[0].grad is None  # stage 0 is not matched
    with pytest.raises(ValueError, match='BoundaryLoss.*positive sum'):
        BoundaryLoss(kd_stage_weights=[0, 0])(feats_S, feats_T, logits_S,
                                              logits_T)


def test_weighted_kl_matches_naive_and_reduces_to_pixel_wise():
    _, _, logits_S, logits_T = make_stages(seed=2)
    boundary = torch.rand(2, 1, 3, 5, dtype=torch.float64)
    resized = bilinear(boundary, (6, 8))
    expected = naive_weighted_kl(logits_S, logits_T, resized, 2.5, 1.5)
    torch.testing.assert_close(
        boundary_weighted_kl(logits_S, logits_T, boundary, 2.5, 1.5),
        expected)
    # alpha = 0: the plain pixel-wise loss, mean over n, h, w.
    plain = naive_weighted_kl(logits_S, logits_T, resized, 0.0, 1.0)
    torch.testing.assert_close(
        boundary_weighted_kl(logits_S, logits_T, boundary, 0.0, 1.0), plain)
    torch.testing.assert_close(
        pixel_kl_map(logits_S, logits_T).mean(), plain)
    # ... the same value as SKD's pixel-wise loss of this package.
    torch.testing.assert_close(
        boundary_weighted_kl(logits_S, logits_T, boundary, 0.0, 2.0),
        pixel_wise_kl(logits_S, logits_T, 2.0))
    # Weights favour boundaries: KL only on boundary pixels grows with alpha.
    kl_on_boundary = torch.zeros(2, 4, 6, 8, dtype=torch.float64)
    edge = torch.zeros(2, 1, 6, 8, dtype=torch.float64)
    edge[..., 3] = 1
    kl_on_boundary[:, 0, :, 3] = 5.0
    low = boundary_weighted_kl(kl_on_boundary, torch.zeros_like(
        kl_on_boundary), edge, 0.0)
    high = boundary_weighted_kl(kl_on_boundary, torch.zeros_like(
        kl_on_boundary), edge, 4.0)
    assert high > 2 * low


def test_without_logits_only_boundary_matching():
    feats_S, feats_T, logits_S, logits_T = make_stages()
    loss = BoundaryLoss()
    matching = loss(feats_S, feats_T)
    expected = sum(((bilinear(naive_boundary_map(s), t.shape[-2:]) -
                     naive_boundary_map(t))**2).mean()
                   for s, t in zip(feats_S, feats_T))
    torch.testing.assert_close(matching, expected)
    no_kd = BoundaryLoss(boundary_kd_weight=0.0)
    torch.testing.assert_close(
        no_kd(feats_S, feats_T, logits_S, logits_T), matching)
    l1 = BoundaryLoss(criterion='l1')(feats_S[:1], feats_T[:1])
    torch.testing.assert_close(
        l1, (bilinear(naive_boundary_map(feats_S[0]), (9, 11)) -
             naive_boundary_map(feats_T[0])).abs().mean())


def test_identical_inputs_give_zero_and_teacher_gets_no_gradient():
    feats_S, _, logits_S, _ = make_stages()
    feats_T = tuple(f.detach().clone().requires_grad_() for f in feats_S)
    logits_T = logits_S.detach().clone().requires_grad_()
    value = BoundaryLoss()(feats_S, feats_T, logits_S, logits_T)
    assert value.abs() < 1e-12
    # Different channel counts, same boundaries: still zero.
    wider_T = tuple(torch.cat([f, 2 * f], dim=1) for f in feats_T)
    assert BoundaryLoss()(feats_S, wider_T).abs() < 1e-12
    feats_S2, feats_T2, logits_S2, logits_T2 = make_stages(seed=4)
    feats_T2 = tuple(f.requires_grad_() for f in feats_T2)
    logits_T2.requires_grad_()
    BoundaryLoss()(feats_S2, feats_T2, logits_S2, logits_T2).backward()
    assert all(f.grad is None for f in feats_T2) and logits_T2.grad is None
    assert all(f.grad is not None for f in feats_S2)


def test_single_tensor_and_float32_math():
    feats_S, feats_T, _, _ = make_stages()
    value = BoundaryLoss()(feats_S[0].detach().bfloat16(),
                           feats_T[0].bfloat16())
    assert value.dtype == torch.float32 and value > 0


def test_registry_build():
    loss = MODELS.build(
        dict(type='BoundaryLoss', stage_weights=[1, 2], alpha=2.0))
    assert isinstance(loss, BoundaryLoss)
    assert loss.stage_weights == [1, 2] and loss.alpha == 2.0


def test_errors():
    feats_S, feats_T, logits_S, logits_T = make_stages()
    with pytest.raises(ValueError, match='BoundaryLoss.*2 feature levels.*1'):
        BoundaryLoss()(feats_S, feats_T[:1])
    with pytest.raises(ValueError, match='BoundaryLoss.*stage_weights.*3'):
        BoundaryLoss(stage_weights=[1, 1, 1])(feats_S, feats_T)
    with pytest.raises(ValueError, match='BoundaryLoss.*both logits_S'):
        BoundaryLoss()(feats_S, feats_T, logits_S)
    with pytest.raises(ValueError,
                       match=r'BoundaryLoss.*\(2, 4, 6, 7\).*\(2, 4, 6, 8\)'
                       r'.*resize'):
        BoundaryLoss()(feats_S, feats_T, logits_S[..., :7], logits_T)
    with pytest.raises(ValueError, match='BoundaryLoss.*4-D'):
        BoundaryLoss()((feats_S[0][0], ), (feats_T[0], ))
    with pytest.raises(ValueError, match='BoundaryLoss.*batch'):
        BoundaryLoss()((feats_S[0][:1], ), (feats_T[0], ))
    with pytest.raises(ValueError, match='BoundaryLoss.*neighbourhood'):
        BoundaryLoss(neighbourhood=6)
    with pytest.raises(ValueError, match='BoundaryLoss.*reduction'):
        extract_boundary_map(feats_T[0], reduction='sum')
    with pytest.raises(ValueError, match='BoundaryLoss.*criterion'):
        BoundaryLoss(criterion='bce')
    with pytest.raises(ValueError, match='BoundaryLoss.*resize_to'):
        BoundaryLoss(resize_to='student')
    with pytest.raises(ValueError, match='BoundaryLoss.*alpha'):
        BoundaryLoss(alpha=-1)


def test_teacher_maps_build_no_autograd_state():
    # The teacher's boundary maps (targets and logit weights) are computed
    # under no_grad: nothing of the teacher's shape is saved for backward,
    # even when its features require grad.
    feats_S, feats_T, logits_S, logits_T = make_stages(seed=5)
    feats_T = tuple(f.detach().requires_grad_() for f in feats_T)
    teacher_shapes = {tuple(f.shape) for f in feats_T}
    student_shapes = {tuple(f.shape) for f in feats_S}
    assert not teacher_shapes & student_shapes  # the check can tell them
    saved = []

    def pack(tensor):
        saved.append(tuple(tensor.shape))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        value = BoundaryLoss()(feats_S, feats_T, logits_S, logits_T)
    assert saved and not teacher_shapes & set(saved), saved
    value.backward()
    assert all(f.grad is None for f in feats_T)
