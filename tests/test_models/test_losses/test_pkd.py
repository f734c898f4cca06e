"""Pearson-correlation distillation (PKD) against a naive float64 loop over
channels, on single maps, FPN levels and maps of different sizes."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmstructkd.models.losses import PKDLoss
from mmstructkd.models.losses.pkd import (pearson_distillation_loss,
                                          standardize_channels)
from mmstructkd.registry import MODELS


def naive_pkd(maps_S, maps_T, eps=1e-6):
    """1/2 mean over (n,c,h,w) of the squared difference of the maps
    standardised per channel over (n, h, w) with the unbiased std."""
    channels = maps_S.shape[1]
    total = 0.0
    for c in range(channels):
        normed = []
        for maps in (maps_S, maps_T):
            values = maps[:, c].reshape(-1)
            mean = values.sum() / values.numel()
            std = torch.sqrt(((values - mean)**2).sum() /
                             (values.numel() - 1))
            normed.append((values - mean) / (std + eps))
        diff = normed[0] - normed[1]
        total = total + (diff**2).sum()
    return total / maps_S.numel() / 2


def random_maps(shape_S, shape_T=None, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    maps_S = 3 * torch.randn(*shape_S, generator=gen, dtype=dtype) + 1
    maps_T = 0.5 * torch.randn(*(shape_T or shape_S), generator=gen,
                               dtype=dtype) - 2
    return maps_S, maps_T


def test_standardized_channels_have_zero_mean_unit_unbiased_std():
    maps, _ = random_maps((3, 5, 7, 4), seed=3)
    normed = standardize_channels(maps.double())
    per_channel = normed.transpose(0, 1).flatten(1)
    torch.testing.assert_close(per_channel.mean(1),
                               torch.zeros(5, dtype=torch.float64),
                               atol=1e-12, rtol=0)
    torch.testing.assert_close(per_channel.std(1),
                               torch.ones(5, dtype=torch.float64),
                               atol=1e-5, rtol=0)


def test_value_and_gradient_match_naive():
    maps_S, maps_T = random_maps((2, 6, 9, 13), seed=1)
    leaf = maps_S.clone().requires_grad_()
    value = pearson_distillation_loss(leaf, maps_T)
    value.backward()
    leaf64 = maps_S.double().requires_grad_()
    ref = naive_pkd(leaf64, maps_T.double())
    ref.backward()
    assert value.dtype == torch.float32
    assert math.isclose(value.item(), ref.item(), rel_tol=1e-5)
    torch.testing.assert_close(leaf.grad.double(), leaf64.grad, rtol=1e-4,
                               atol=1e-9)


def test_equals_one_minus_pearson_correlation_per_channel():
    maps_S, maps_T = random_maps((2, 4, 6, 5), seed=4, dtype=torch.float64)
    value = pearson_distillation_loss(maps_S, maps_T)
    m = maps_S[:, 0].numel()
    corr = torch.stack([
        torch.corrcoef(torch.stack([maps_S[:, c].reshape(-1),
                                    maps_T[:, c].reshape(-1)]))[0, 1]
        for c in range(4)
    ])
    # With the unbiased std: mean (S_hat - T_hat)^2 / 2 = (M-1)/M (1 - r).
    ref = ((m - 1) / m * (1 - corr)).mean()
    assert math.isclose(value.item(), ref.item(), rel_tol=1e-5)


def test_scale_and_shift_invariant_and_zero_for_identical():
    maps_S, maps_T = random_maps((2, 3, 5, 7))
    assert pearson_distillation_loss(5 * maps_T + 3, maps_T).item() == \
        pytest.approx(0, abs=1e-6)
    assert pearson_distillation_loss(maps_S, maps_T).item() > 0.1


@pytest.mark.parametrize('resize_stu', [True, False])
def test_different_sizes_resize_one_side_bilinearly(resize_stu):
    maps_S, maps_T = random_maps((2, 4, 7, 9), (2, 4, 13, 17), seed=5)
    leaf = maps_S.clone().requires_grad_()
    value = PKDLoss(resize_stu=resize_stu)(leaf, maps_T)
    value.backward()
    leaf64 = maps_S.double().requires_grad_()
    if resize_stu:
        ref = naive_pkd(F.interpolate(leaf64, size=(13, 17), mode='bilinear',
                                      align_corners=False), maps_T.double())
    else:
        ref = naive_pkd(leaf64, F.interpolate(
            maps_T.double(), size=(7, 9), mode='bilinear',
            align_corners=False))
    ref.backward()
    assert math.isclose(value.item(), ref.item(), rel_tol=1e-5)
    torch.testing.assert_close(leaf.grad.double(), leaf64.grad, rtol=1e-4,
                               atol=1e-9)
    # The two directions give different values.
    other = PKDLoss(resize_stu=not resize_stu)(maps_S, maps_T)
    assert not math.isclose(value.item(), other.item(), rel_tol=1e-3)


def test_fpn_levels_are_summed_with_weights():
    sizes = [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    levels = [random_maps((2, 4, h, w), seed=h) for h, w in sizes]
    levels_S = tuple(s.clone().requires_grad_() for s, _ in levels)
    levels_T = tuple(t for _, t in levels)
    weights = [1.0, 0.5, 2.0, 1.0, 3.0]
    loss = PKDLoss(loss_weight=6.0, level_weights=weights)(levels_S,
                                                            levels_T)
    loss.backward()
    leaves64 = [s.detach().double().requires_grad_() for s in levels_S]
    ref = 6.0 * sum(w * naive_pkd(s, t.double())
                    for w, s, t in zip(weights, leaves64, levels_T))
    ref.backward()
    assert math.isclose(loss.item(), ref.item(), rel_tol=1e-5)
    for level, level64 in zip(levels_S, leaves64):
        # atol: at 1x1 (two values per channel) the exact gradient is ~0.
        torch.testing.assert_close(level.grad.double(), level64.grad,
                                   rtol=1e-4, atol=1e-6)


def test_single_value_channels_and_constant_channels_stay_finite():
    # N*H*W = 1: nothing to standardise over; the level contributes 0.
    maps_S = torch.randn(1, 3, 1, 1, requires_grad=True)
    value = pearson_distillation_loss(maps_S, torch.randn(1, 3, 1, 1))
    value.backward()
    assert value.item() == 0 and torch.isfinite(maps_S.grad).all()
    # A constant student channel: finite value, finite (zero) gradient.
    maps_S = torch.ones(2, 3, 4, 4, requires_grad=True)
    value = pearson_distillation_loss(maps_S, torch.randn(2, 3, 4, 4))
    value.backward()
    assert math.isfinite(value.item())
    assert torch.isfinite(maps_S.grad).all()


def test_half_precision_and_autocast_keep_float32_math():
    maps_S, maps_T = random_maps((2, 4, 11, 7), seed=2)
    half_S = maps_S.to(torch.bfloat16).requires_grad_()
    half_T = maps_T.to(torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = pearson_distillation_loss(half_S, half_T)
    value.backward()
    ref = naive_pkd(half_S.double(), half_T.double())
    assert value.dtype == torch.float32
    assert math.isclose(value.item(), ref.item(), rel_tol=1e-5)
    assert half_S.grad.dtype == torch.bfloat16


def test_teacher_gets_no_gradient():
    maps_S, maps_T = random_maps((1, 3, 4, 5), (1, 3, 8, 10))
    maps_S.requires_grad_()
    maps_T.requires_grad_()
    for resize_stu in (True, False):
        pearson_distillation_loss(maps_S, maps_T, resize_stu).backward()
    assert maps_T.grad is None and maps_S.grad is not None


def test_channel_mismatch_suggests_a_connector():
    with pytest.raises(ValueError) as err:
        PKDLoss()(torch.randn(2, 16, 7, 9), torch.randn(2, 32, 7, 9))
    message = str(err.value)
    assert 'PKDLoss' in message and 'channel' in message
    assert '(2, 16, 7, 9)' in message and '(2, 32, 7, 9)' in message
    assert 'ConvModuleConnector' in message and 'connectors' in message
    assert 'in_channel=16, out_channel=32' in message


def test_level_count_and_batch_mismatches_are_errors():
    maps_S, maps_T = random_maps((2, 3, 8, 8))
    with pytest.raises(ValueError, match='PKDLoss.*student has 2 feature '
                       'levels and teacher has 1'):
        PKDLoss()((maps_S, maps_S), (maps_T, ))
    with pytest.raises(ValueError, match='PKDLoss.*batch'):
        PKDLoss()(maps_S, maps_T[:1])
    with pytest.raises(ValueError, match='PKDLoss.*4-D'):
        PKDLoss()(maps_S[0], maps_T[0])


def test_registry_builds_the_loss():
    loss = MODELS.build(
        dict(type='mmstructkd.PKDLoss', loss_weight=6.0, resize_stu=False))
    assert isinstance(loss, PKDLoss)
    assert (loss.loss_weight, loss.resize_stu) == (6.0, False)
