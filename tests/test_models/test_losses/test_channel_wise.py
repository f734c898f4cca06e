"""Channel-wise divergence (CWD) against a naive float64 loop over
channels, on single maps and on FPN levels."""
import math

import pytest
import torch

from mmstructkd.models.losses.channel_wise import (ChannelWiseDivergence,
                                                   channel_wise_divergence)
from mmstructkd.registry import MODELS


def naive_channel_wise(maps_S, maps_T, tau):
    """tau^2 / (N C) * sum_{n,c} KL(softmax_hw(T/tau) || softmax_hw(S/tau))."""
    batch, channels = maps_S.shape[:2]
    total = 0.0
    for n in range(batch):
        for c in range(channels):
            zs = maps_S[n, c].reshape(-1) / tau
            zt = maps_T[n, c].reshape(-1) / tau
            log_ps = zs - torch.logsumexp(zs, 0)
            log_pt = zt - torch.logsumexp(zt, 0)
            total = total + (log_pt.exp() * (log_pt - log_ps)).sum()
    return tau**2 * total / (batch * channels)


def random_maps(shape, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    maps_S = 2 * torch.randn(*shape, generator=gen, dtype=dtype)
    maps_T = 2 * torch.randn(*shape, generator=gen, dtype=dtype)
    return maps_S, maps_T


@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_value_and_gradient_match_naive(tau):
    maps_S, maps_T = random_maps((2, 6, 9, 13), seed=1)
    leaf = maps_S.clone().requires_grad_()
    value = channel_wise_divergence(leaf, maps_T, tau=tau)
    value.backward()
    leaf64 = maps_S.double().requires_grad_()
    ref = naive_channel_wise(leaf64, maps_T.double(), tau)
    ref.backward()
    assert value.dtype == torch.float32
    assert math.isclose(value.item(), ref.item(), rel_tol=1e-5)
    torch.testing.assert_close(leaf.grad.double(), leaf64.grad, rtol=1e-4,
                               atol=1e-8)


def test_identical_maps_give_zero_and_different_do_not():
    maps_S, maps_T = random_maps((2, 3, 5, 7))
    assert channel_wise_divergence(
        maps_T.clone(), maps_T).item() == pytest.approx(0, abs=1e-7)
    assert channel_wise_divergence(maps_S, maps_T).item() > 0.1


def test_half_precision_and_autocast_keep_float32_math():
    maps_S, maps_T = random_maps((2, 4, 11, 7), seed=2)
    half_S = maps_S.to(torch.float16).requires_grad_()
    half_T = maps_T.to(torch.float16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = channel_wise_divergence(half_S, half_T, tau=4.0)
    value.backward()
    ref = naive_channel_wise(half_S.double(), half_T.double(), 4.0)
    assert value.dtype == torch.float32
    assert math.isclose(value.item(), ref.item(), rel_tol=1e-5)
    assert half_S.grad.dtype == torch.float16


def test_teacher_gets_no_gradient():
    maps_S, maps_T = random_maps((1, 3, 4, 5))
    maps_S.requires_grad_()
    maps_T.requires_grad_()
    channel_wise_divergence(maps_S, maps_T).backward()
    assert maps_T.grad is None and maps_S.grad is not None


def test_module_applies_loss_weight_and_tau():
    maps_S, maps_T = random_maps((2, 5, 7, 9))
    loss = ChannelWiseDivergence(tau=4.0, loss_weight=3.0)(maps_S, maps_T)
    torch.testing.assert_close(
        loss, 3.0 * channel_wise_divergence(maps_S, maps_T, tau=4.0))


def test_fpn_levels_are_summed_with_level_weights():
    sizes = [(17, 23), (9, 12), (5, 6)]
    levels = [random_maps((2, 4, h, w), seed=h) for h, w in sizes]
    levels_S = tuple(s.requires_grad_() for s, _ in levels)
    levels_T = tuple(t for _, t in levels)
    weights = [1.0, 0.5, 2.0]
    loss = ChannelWiseDivergence(
        tau=2.0, loss_weight=10.0, level_weights=weights)(levels_S, levels_T)
    ref = 10.0 * sum(
        w * naive_channel_wise(s.double(), t.double(), 2.0)
        for w, s, t in zip(weights, levels_S, levels_T))
    assert math.isclose(loss.item(), ref.item(), rel_tol=1e-5)
    loss.backward()
    assert all(level.grad is not None for level in levels_S)


def test_level_count_mismatch_is_an_error():
    maps_S, maps_T = random_maps((1, 3, 8, 8))
    with pytest.raises(ValueError,
                       match='ChannelWiseDivergence.*2 feature levels'):
        ChannelWiseDivergence()((maps_S, maps_S), (maps_T, ))
    with pytest.raises(ValueError, match='level_weights has 3 entries'):
        ChannelWiseDivergence(level_weights=[1, 1, 1])((maps_S, ), (maps_T, ))


def test_channel_mismatch_suggests_a_connector():
    with pytest.raises(ValueError) as err:
        channel_wise_divergence(torch.randn(2, 4, 7, 9),
                                torch.randn(2, 8, 7, 9))
    message = str(err.value)
    assert 'ChannelWiseDivergence' in message and 'channel' in message
    assert '(2, 4, 7, 9)' in message and '(2, 8, 7, 9)' in message
    assert 'ConvModuleConnector' in message and 'connectors' in message
    assert 'in_channel=4, out_channel=8' in message


def test_spatial_mismatch_names_loss_and_shapes():
    with pytest.raises(ValueError) as err:
        channel_wise_divergence(torch.randn(2, 4, 7, 9),
                                torch.randn(2, 4, 14, 18))
    message = str(err.value)
    assert 'ChannelWiseDivergence' in message and 'spatial' in message
    assert '(2, 4, 7, 9)' in message and '(2, 4, 14, 18)' in message
    with pytest.raises(ValueError, match='tau must be > 0'):
        ChannelWiseDivergence(tau=-1.0)


def test_registry_builds_the_loss():
    loss = MODELS.build(
        dict(type='mmstructkd.ChannelWiseDivergence', tau=4.0,
             loss_weight=3.0, level_weights=[1.0, 2.0]))
    assert isinstance(loss, ChannelWiseDivergence)
    assert (loss.tau, loss.loss_weight) == (4.0, 3.0)
    assert loss.level_weights == [1.0, 2.0]
