"""Masked generative distillation (MGD): the loss against a naive float64
sum, the connector against a naive recomputation with the same mask, and the
mask generator's state through state_dict (exact resume)."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from mmstructkd.models.connectors import MGDConnector, random_keep_mask
from mmstructkd.models.losses import MGDLoss
from mmstructkd.models.losses.mgd import masked_generative_loss
from mmstructkd.registry import MODELS


def naive_mgd(gen, feats_T, alpha):
    """alpha / N * sum over every element of (gen - T)^2, by loops."""
    batch = gen.shape[0]
    total = 0.0
    for n in range(batch):
        for c in range(gen.shape[1]):
            total = total + ((gen[n, c] - feats_T[n, c])**2).sum()
    return alpha * total / batch


def naive_mask(shape, lambda_mgd, seed, mask_on_channel):
    """The mask rule written out: one uniform per position (or channel)
    from a generator seeded with ``seed``; dropped where u < lambda."""
    n, c, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    draw = (n, c, 1, 1) if mask_on_channel else (n, 1, h, w)
    u = torch.rand(draw, generator=gen)
    mask = torch.ones(draw, dtype=torch.float64)
    for idx in range(u.numel()):
        if u.reshape(-1)[idx] < lambda_mgd:
            mask.view(-1)[idx] = 0.0
    return mask


def naive_connector(conn, feats, mask):
    """align -> mask -> conv3x3 -> ReLU -> conv3x3, in float64."""
    x = feats.double()
    if conn.align is not None:
        x = F.conv2d(x, conn.align.weight.double(), conn.align.bias.double())
    x = x * mask
    first, last = conn.generation[0], conn.generation[2]
    x = F.relu(F.conv2d(x, first.weight.double(), first.bias.double(),
                        padding=1))
    return F.conv2d(x, last.weight.double(), last.bias.double(), padding=1)


def random_maps(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=gen),
            torch.randn(*shape, generator=gen))


# ----------------------------------------------------------------------
# The loss
# ----------------------------------------------------------------------
@pytest.mark.parametrize('alpha', [2e-5, 1.0])
def test_loss_value_and_gradient_match_naive(alpha):
    maps_S, maps_T = random_maps((2, 6, 9, 13), seed=1)
    leaf = maps_S.clone().requires_grad_()
    value = masked_generative_loss(leaf, maps_T, alpha_mgd=alpha)
    value.backward()
    leaf64 = maps_S.double().requires_grad_()
    ref = naive_mgd(leaf64, maps_T.double(), alpha)
    ref.backward()
    assert value.dtype == torch.float32
    assert math.isclose(value.item(), ref.item(), rel_tol=1e-5)
    torch.testing.assert_close(leaf.grad.double(), leaf64.grad, rtol=1e-4,
                               atol=1e-12)


def test_loss_sums_over_elements_and_averages_over_batch():
    # Doubling the batch with copies keeps the value; doubling H does not.
    maps_S, maps_T = random_maps((1, 3, 4, 4))
    one = masked_generative_loss(maps_S, maps_T, 1.0)
    two = masked_generative_loss(maps_S.repeat(2, 1, 1, 1),
                                 maps_T.repeat(2, 1, 1, 1), 1.0)
    taller = masked_generative_loss(maps_S.repeat(1, 1, 2, 1),
                                    maps_T.repeat(1, 1, 2, 1), 1.0)
    assert math.isclose(one.item(), two.item(), rel_tol=1e-6)
    assert math.isclose(taller.item(), 2 * one.item(), rel_tol=1e-6)


def test_module_fpn_levels_weights_and_teacher_detached():
    sizes = [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    levels = [random_maps((2, 4, h, w), seed=h) for h, w in sizes]
    levels_S = tuple(s.clone().requires_grad_() for s, _ in levels)
    levels_T = tuple(t.clone().requires_grad_() for _, t in levels)
    weights = [1.0, 0.5, 2.0, 1.0, 3.0]
    loss = MGDLoss(alpha_mgd=2e-5, loss_weight=3.0,
                   level_weights=weights)(levels_S, levels_T)
    loss.backward()
    leaves64 = [s.detach().double().requires_grad_() for s in levels_S]
    ref = 3.0 * sum(w * naive_mgd(s, t.detach().double(), 2e-5)
                    for w, s, t in zip(weights, leaves64, levels_T))
    ref.backward()
    assert math.isclose(loss.item(), ref.item(), rel_tol=1e-5)
    for level, level64 in zip(levels_S, leaves64):
        torch.testing.assert_close(level.grad.double(), level64.grad,
                                   rtol=1e-4, atol=1e-12)
    assert all(t.grad is None for t in levels_T)


def test_loss_under_autocast_is_float32():
    maps_S, maps_T = random_maps((2, 4, 6, 6))
    half_S = maps_S.to(torch.bfloat16).requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = MGDLoss(alpha_mgd=1.0)(half_S, maps_T.to(torch.bfloat16))
    value.backward()
    assert value.dtype == torch.float32
    assert half_S.grad.dtype == torch.bfloat16


def test_loss_errors_name_the_loss_and_shapes():
    with pytest.raises(ValueError) as err:
        MGDLoss()(torch.randn(2, 16, 7, 9), torch.randn(2, 32, 7, 9))
    message = str(err.value)
    assert 'MGDLoss' in message and 'channel' in message
    assert '(2, 16, 7, 9)' in message and '(2, 32, 7, 9)' in message
    assert 'MGDConnector' in message and 'teacher_channels to 32' in message
    with pytest.raises(ValueError, match='MGDLoss.*spatial'):
        MGDLoss()(torch.randn(2, 4, 7, 9), torch.randn(2, 4, 14, 18))
    with pytest.raises(ValueError, match='MGDLoss.*student has 1 feature '
                       'levels and teacher has 2'):
        MGDLoss()((torch.randn(2, 4, 8, 8), ),
                  (torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4)))
    with pytest.raises(ValueError, match='alpha_mgd must be > 0'):
        MGDLoss(alpha_mgd=0)


# ----------------------------------------------------------------------
# The connector
# ----------------------------------------------------------------------
@pytest.mark.parametrize('mask_on_channel', [False, True])
@pytest.mark.parametrize('channels', [(6, 8), (8, 8)])
def test_connector_matches_naive_with_the_same_mask(mask_on_channel,
                                                    channels):
    student_channels, teacher_channels = channels
    torch.manual_seed(0)
    conn = MGDConnector(student_channels, teacher_channels, lambda_mgd=0.65,
                        mask_on_channel=mask_on_channel, seed=123)
    assert (conn.align is None) == (student_channels == teacher_channels)
    feats, _ = random_maps((2, student_channels, 7, 5), seed=2)
    leaf = feats.clone().requires_grad_()
    out = conn(leaf)
    mask = naive_mask((2, teacher_channels, 7, 5), 0.65, 123,
                      mask_on_channel)
    leaf64 = feats.double().requires_grad_()
    ref = naive_connector(conn, leaf64, mask)
    assert out.shape == (2, teacher_channels, 7, 5)
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)
    # Gradients through the mask (zero where masked when no align conv).
    out.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(leaf.grad.double(), leaf64.grad, rtol=1e-4,
                               atol=1e-5)
    if conn.align is None:
        dropped = (mask == 0).expand_as(leaf64)
        assert torch.all(leaf.grad[dropped] == 0)
    assert all(p.grad is not None for p in conn.parameters())


def test_mask_drops_the_expected_fraction_and_extremes():
    gen = torch.Generator().manual_seed(0)
    mask = random_keep_mask((8, 3, 64, 64), 0.65, gen)
    assert mask.shape == (8, 1, 64, 64)
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert abs((1 - mask.mean().item()) - 0.65) < 0.01
    channel = random_keep_mask((8, 3, 64, 64), 0.65, gen,
                               mask_on_channel=True)
    assert channel.shape == (8, 3, 1, 1)
    assert random_keep_mask((2, 3, 4, 4), 0.0, gen).min() == 1
    assert random_keep_mask((2, 3, 4, 4), 1.0, gen).max() == 0
    with pytest.raises(ValueError, match='lambda_mgd is a probability'):
        MGDConnector(4, 4, lambda_mgd=1.5)


def test_generator_state_round_trip_gives_identical_masks():
    conn = MGDConnector(4, 4, seed=7)
    feats = torch.randn(2, 4, 6, 6)
    conn(feats)  # advance the generator past its seed
    saved = copy.deepcopy(conn.state_dict())
    assert saved['_extra_state'].dtype == torch.uint8
    first = [conn(feats) for _ in range(3)]
    conn.load_state_dict(saved)
    again = [conn(feats) for _ in range(3)]
    for a, b in zip(first, again):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # A fresh connector (other seed, other weights) loading the state
    # continues exactly: what --resume does.
    other = MGDConnector(4, 4, seed=99)
    other.load_state_dict(saved)
    for a, b in zip(first, (other(feats) for _ in range(3))):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # Successive draws differ (the generator advances).
    assert not torch.equal(first[0], first[1])


def test_generator_state_survives_torch_save_weights_only(tmp_path):
    conn = MGDConnector(4, 4, seed=3)
    torch.save({'state_dict': conn.state_dict()}, tmp_path / 'ckpt.pth')
    expected = conn(torch.ones(1, 4, 5, 5))
    fresh = MGDConnector(4, 4, seed=0)
    state = torch.load(tmp_path / 'ckpt.pth', weights_only=True)
    fresh.load_state_dict(state['state_dict'])
    torch.testing.assert_close(fresh(torch.ones(1, 4, 5, 5)), expected,
                               rtol=0, atol=0)


def test_masks_do_not_touch_the_global_rng_and_seeds_are_deterministic():
    torch.manual_seed(0)
    a, b = MGDConnector(4, 4, seed=5), MGDConnector(4, 4, seed=5)
    b.load_state_dict(a.state_dict())  # same weights
    state = torch.get_rng_state()
    feats = torch.randn(2, 4, 6, 6)
    torch.set_rng_state(state)
    out_a = a(feats)
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(out_a, b(feats), rtol=0, atol=0)
    # deepcopy (EMA, model copies) carries the generator along.
    c = copy.deepcopy(a)
    torch.testing.assert_close(a(feats), c(feats), rtol=0, atol=0)


def test_connector_on_fpn_tuple_and_bad_input():
    conn = MGDConnector(4, 8, seed=1)
    levels = (torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4))
    out = conn(levels)
    assert isinstance(out, tuple)
    assert [o.shape for o in out] == [(2, 8, 8, 8), (2, 8, 4, 4)]
    with pytest.raises(ValueError, match=r'MGDConnector expects \(N, 4, H, '
                       r'W\) inputs, got \(2, 8, 8, 8\)'):
        conn(torch.randn(2, 8, 8, 8))


def test_connector_under_autocast_keeps_the_input_dtype():
    conn = MGDConnector(4, 4)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = conn(torch.randn(2, 4, 6, 6))
    assert out.dtype == torch.bfloat16


def test_registry_builds_loss_and_connector():
    loss = MODELS.build(dict(type='mmstructkd.MGDLoss', alpha_mgd=1e-4))
    assert isinstance(loss, MGDLoss) and loss.alpha_mgd == 1e-4
    conn = MODELS.build(
        dict(type='mmstructkd.MGDConnector', student_channels=16,
             teacher_channels=32, lambda_mgd=0.5, mask_on_channel=True,
             seed=4))
    assert isinstance(conn, MGDConnector)
    assert (conn.lambda_mgd, conn.mask_on_channel, conn.seed) == (0.5, True,
                                                                  4)
