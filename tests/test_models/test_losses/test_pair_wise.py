"""Pair-wise (affinity) loss: values and gradients against a naive float64
M x M implementation, pooling, the full-resolution Gram route, precision,
memory, errors, FPN levels and the registry."""
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from mmstructkd.models.losses.pair_wise import (PairWiseLoss,
                                                affinity_distance,
                                                node_kernel, pair_wise_loss,
                                                pool_nodes)
from mmstructkd.registry import MODELS


# ---------------------------------------------------------------- naive ---
def naive_pool(feats, scale, pool):
    """Loop over ceil-mode windows; each takes max/mean of its valid part."""
    if scale is None:
        return feats
    height, width = feats.shape[-2:]
    kh = min(height, max(1, int(height * scale)))
    kw = min(width, max(1, int(width * scale)))
    rows = []
    for top in range(0, height, kh):
        cols = []
        for left in range(0, width, kw):
            window = feats[..., top:top + kh, left:left + kw].flatten(-2)
            cols.append(window.amax(-1) if pool == 'max' else window.mean(-1))
        rows.append(torch.stack(cols, -1))
    return torch.stack(rows, -2)


def naive_pair_wise(preds_S, preds_T, scale=0.5, pool='max', eps=1e-12):
    """mean_{n,i,j} (A_T - A_S)^2 with explicit M x M affinities."""

    def affinity(feats):
        nodes = naive_pool(feats, scale, pool).flatten(2)
        norms = torch.linalg.vector_norm(nodes, dim=1, keepdim=True)
        norms = norms.clamp_min(eps)  # as F.normalize (zero grad at 0)
        unit = nodes / norms
        return torch.einsum('nci,ncj->nij', unit, unit)

    return (affinity(preds_T) - affinity(preds_S)).pow(2).mean()


def random_pair(shape_S, channels_T, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    preds_S = torch.randn(*shape_S, generator=gen, dtype=dtype)
    shape_T = (shape_S[0], channels_T) + tuple(shape_S[2:])
    preds_T = torch.randn(*shape_T, generator=gen, dtype=dtype)
    return preds_S.requires_grad_(), preds_T


def value_and_grad(fn, preds_S, preds_T):
    preds_S = preds_S.detach().clone().requires_grad_()
    loss = fn(preds_S, preds_T)
    loss.backward()
    return loss.detach(), preds_S.grad


def naive_value_and_grad(preds_S, preds_T, **kwargs):
    return value_and_grad(
        lambda s, t: naive_pair_wise(s, t, **kwargs), preds_S.double(),
        preds_T.double())


# -------------------------------------------------------------- pooling ---
def test_official_node_grid():
    # The official setting: a 65x65 map with scale 0.5 gives 3x3 nodes.
    assert node_kernel(65, 65, 0.5) == (32, 32)
    feats = torch.randn(1, 2, 65, 65)
    assert pool_nodes(feats, 0.5).shape == (1, 2, 3, 3)


@pytest.mark.parametrize('pool', ['max', 'avg'])
def test_pool_nodes_matches_naive_windows(pool):
    # 13x19 with scale 0.3: kernel (3, 5), last windows hang over the border.
    feats = torch.randn(2, 3, 13, 19, dtype=torch.float64)
    nodes = pool_nodes(feats, 0.3, pool)
    assert nodes.shape == (2, 3, 5, 4)
    torch.testing.assert_close(nodes, naive_pool(feats, 0.3, pool))


def test_avg_pool_overhanging_window_averages_valid_positions_only():
    feats = torch.ones(1, 1, 5, 5)
    # Kernel 2 (int(5 * 0.5)): the last row/column of windows holds 1 or 2
    # valid positions; including padding would give values below 1.
    assert torch.all(pool_nodes(feats, 0.5, 'avg') == 1)


def test_tiny_scale_is_clamped_to_one_position_per_node():
    preds_S, preds_T = random_pair((2, 3, 3, 5), 4)
    assert node_kernel(3, 5, 0.1) == (1, 1)
    torch.testing.assert_close(
        pair_wise_loss(preds_S, preds_T, scale=0.1),
        pair_wise_loss(preds_S, preds_T, scale=None))


# ------------------------------------------------------ values and grads ---
@pytest.mark.parametrize('scale,pool', [(0.5, 'max'), (0.3, 'avg'),
                                        (0.25, 'max'), (None, 'max')])
def test_value_and_gradient_match_naive(scale, pool):
    # Odd, non-square maps and different channel counts.
    preds_S, preds_T = random_pair((2, 5, 17, 23), 9, seed=1)
    value, grad = value_and_grad(
        lambda s, t: pair_wise_loss(s, t, scale=scale, pool=pool), preds_S,
        preds_T)
    ref_value, ref_grad = naive_value_and_grad(
        preds_S, preds_T, scale=scale, pool=pool)
    assert value.dtype == torch.float32
    assert value.item() > 0
    assert math.isclose(value.item(), ref_value.item(), rel_tol=1e-5)
    torch.testing.assert_close(
        grad.double(), ref_grad, rtol=1e-4, atol=1e-4 * ref_grad.abs().max())


@pytest.mark.parametrize('chunk_size', [1, 5, 4096])
@pytest.mark.parametrize(
    'shape_S,channels_T',
    [((2, 3, 7, 11), 6), ((1, 8, 9, 5), 8), ((3, 6, 4, 13), 2),
     ((1, 40, 3, 5), 33)])
def test_gram_route_is_exact_in_float64(shape_S, channels_T, chunk_size):
    # Float64 inputs stay float64: the Gram identity and its hand-written
    # backward must then agree with the naive M x M version to rounding.
    preds_S, preds_T = random_pair(shape_S, channels_T, seed=2,
                                   dtype=torch.float64)
    value, grad = value_and_grad(
        lambda s, t: affinity_distance(
            s.flatten(2), t.flatten(2), method='gram',
            chunk_size=chunk_size), preds_S, preds_T)
    ref_value, ref_grad = naive_value_and_grad(preds_S, preds_T, scale=None)
    assert value.dtype == torch.float64
    torch.testing.assert_close(value, ref_value, rtol=1e-10, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-8, atol=1e-14)


def test_direct_and_gram_routes_agree_on_pooled_nodes():
    preds_S, preds_T = random_pair((2, 4, 15, 21), 7, seed=3)
    nodes_S = pool_nodes(preds_S, 0.2).flatten(2)
    nodes_T = pool_nodes(preds_T, 0.2).flatten(2)
    direct = affinity_distance(nodes_S, nodes_T, method='direct')
    gram = affinity_distance(nodes_S, nodes_T, method='gram', chunk_size=4)
    torch.testing.assert_close(direct, gram, rtol=1e-5, atol=0)


def test_nodes_below_eps_give_finite_loss_and_match_naive():
    # An all-zero node (e.g. after ReLU) is divided by eps, not by 0; so is
    # a node with a norm below eps (1e-12), whose gradient then has no
    # projection term.
    preds_S, preds_T = random_pair((1, 4, 6, 7), 5, seed=4,
                                   dtype=torch.float64)
    preds_S = preds_S.detach().clone()
    preds_S[:, :, 2, 3] = 0
    preds_S[:, :, 4, 5] = torch.tensor([3e-13, -2e-13, 4e-13, 1e-13])
    value, grad = value_and_grad(
        lambda s, t: pair_wise_loss(s, t, scale=None), preds_S, preds_T)
    ref_value, ref_grad = naive_value_and_grad(preds_S, preds_T, scale=None)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(value, ref_value, rtol=1e-10, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-7, atol=1e-12)


# ------------------------------------------------------------- precision ---
@pytest.mark.parametrize(
    'kind', ['independent', 'relu', 'close', 'close_shared_direction'])
def test_full_resolution_float32_matches_float64_naive(kind):
    gen = torch.Generator().manual_seed(5)
    preds_T = torch.randn(2, 24, 31, 43, generator=gen)
    noise = torch.randn(preds_T.shape, generator=gen)
    if kind == 'independent':
        preds_S = noise[:, :16]
    elif kind == 'relu':
        preds_T, preds_S = preds_T.relu(), noise.relu()
    elif kind == 'close':
        # Affinities nearly equal: the Gram terms nearly cancel.
        preds_S = preds_T + 0.1 * noise
    else:
        # Worse: all nodes share a direction (every cosine near 0.9), so
        # the plain three-term Gram sum in float32 GEMMs is off by ~1e-3;
        # splitting off the mean direction keeps it near 1e-6.
        preds_T = preds_T.relu() + 1
        preds_S = preds_T + 0.05 * noise
    value = pair_wise_loss(preds_S, preds_T, scale=None)
    ref = naive_pair_wise(preds_S.double(), preds_T.double(), scale=None)
    assert abs(value.item() - ref.item()) / ref.item() < 1e-4


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('scale', [None, 0.5])
def test_half_precision_inputs_keep_their_value(dtype, scale):
    preds_S, preds_T = random_pair((2, 6, 19, 25), 10, seed=6)
    half_S = preds_S.detach().to(dtype).requires_grad_()
    half_T = preds_T.to(dtype)
    value = pair_wise_loss(half_S, half_T, scale=scale)
    value.backward()
    # Reference: float64 naive loss of the same rounded numbers.
    ref = naive_pair_wise(half_S.double(), half_T.double(), scale=scale)
    assert value.dtype == torch.float32
    assert abs(value.item() - ref.item()) / ref.item() < 1e-5
    assert half_S.grad.dtype == dtype
    assert torch.isfinite(half_S.grad.float()).all()


def test_autocast_does_not_lower_precision():
    preds_S, preds_T = random_pair((1, 5, 11, 13), 7, seed=7)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = pair_wise_loss(preds_S, preds_T, scale=None)
    ref = naive_pair_wise(preds_S.double(), preds_T.double(), scale=None)
    assert value.dtype == torch.float32
    assert abs(value.item() - ref.item()) / ref.item() < 1e-5


# ---------------------------------------------------------------- memory ---
class LargestTensorRecorder(TorchDispatchMode):
    """Records the largest tensor (element count) any aten op returns.

    A dispatch mode sees every aten op, whichever Python API or autograd
    formula issued it (matmul, einsum, bmm, expand...), so a new way of
    building an M x M matrix cannot slip past it.
    """

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self.largest = max(self.largest, leaf.numel())
        return out


def largest_tensors(fn, preds_S, preds_T):
    """Largest op output in forward and in backward, separately."""
    preds_S = preds_S.detach().clone().requires_grad_()
    with LargestTensorRecorder() as forward:
        loss = fn(preds_S, preds_T)
    with LargestTensorRecorder() as backward:
        loss.backward()
    assert preds_S.grad is not None
    return forward.largest, backward.largest


def test_recorder_catches_an_m_by_m_tensor():
    # The check below must be able to fail: the direct route on a 30x30 map
    # builds 900 x 900 matrices in forward and backward.
    preds_S, preds_T = random_pair((1, 3, 30, 30), 3)
    num_nodes = 30 * 30
    forward, backward = largest_tensors(
        lambda s, t: affinity_distance(
            s.flatten(2), t.flatten(2), method='direct'), preds_S, preds_T)
    assert forward >= num_nodes**2 and backward >= num_nodes**2


def test_full_resolution_never_builds_an_m_by_m_tensor():
    preds_S, preds_T = random_pair((1, 4, 96, 96), 6)
    num_nodes = 96 * 96
    forward, backward = largest_tensors(
        lambda s, t: pair_wise_loss(s, t, scale=None), preds_S, preds_T)
    # Nothing larger than the two input maps together plus three rows (the
    # loss's stacked chunk, N * (C_S + C_T + 3) * M elements) may appear:
    # far below one M x M matrix (9216 ** 2).
    assert forward <= (4 + 6 + 3) * num_nodes, forward
    assert backward <= (4 + 6 + 3) * num_nodes, backward


# --------------------------------------------------- module and levels ---
def test_identical_inputs_give_zero_and_different_inputs_do_not():
    preds_S, preds_T = random_pair((2, 5, 13, 17), 5, seed=8)
    for scale in (0.5, None):
        assert pair_wise_loss(preds_T.clone(), preds_T,
                              scale=scale).item() == pytest.approx(
                                  0, abs=1e-12)
        assert pair_wise_loss(preds_S, preds_T, scale=scale).item() > 1e-3


def test_teacher_gets_no_gradient():
    preds_S, preds_T = random_pair((1, 3, 9, 11), 4)
    preds_T.requires_grad_()
    for scale in (0.5, None):
        pair_wise_loss(preds_S, preds_T, scale=scale).backward()
    assert preds_T.grad is None
    assert preds_S.grad is not None


def test_loss_weight_scales_the_loss():
    preds_S, preds_T = random_pair((2, 4, 11, 15), 6)
    plain = pair_wise_loss(preds_S, preds_T, scale=None)
    loss = PairWiseLoss(scale=None, loss_weight=0.5)(preds_S, preds_T)
    torch.testing.assert_close(loss, 0.5 * plain)


def test_fpn_levels_are_summed_with_level_weights():
    levels_S = [random_pair((2, 4, h, w), 8, seed=h)[0]
                for h, w in [(16, 20), (8, 10), (3, 5)]]
    levels_T = [random_pair((2, 4, h, w), 8, seed=h)[1]
                for h, w in [(16, 20), (8, 10), (3, 5)]]
    weights = [1.0, 0.5, 2.0]
    loss = PairWiseLoss(
        scale=None, loss_weight=3.0, level_weights=weights)(
            tuple(levels_S), tuple(levels_T))
    ref = 3.0 * sum(
        w * naive_pair_wise(s.double(), t.double(), scale=None)
        for w, s, t in zip(weights, levels_S, levels_T))
    assert math.isclose(loss.item(), ref.item(), rel_tol=1e-5)
    loss.backward()
    assert all(level.grad is not None for level in levels_S)


def test_level_count_mismatch_is_an_error():
    preds_S, preds_T = random_pair((1, 3, 8, 8), 3)
    with pytest.raises(ValueError, match='PairWiseLoss.*2 feature levels.*'
                       'teacher has 1'):
        PairWiseLoss()((preds_S, preds_S), (preds_T, ))
    with pytest.raises(ValueError, match='PairWiseLoss: level_weights'):
        PairWiseLoss(level_weights=[1.0])((preds_S, preds_S),
                                          (preds_T, preds_T))


def test_spatial_mismatch_names_loss_and_both_shapes():
    preds_S = torch.randn(2, 4, 17, 23)
    preds_T = torch.randn(2, 8, 9, 12)
    with pytest.raises(ValueError) as err:
        pair_wise_loss(preds_S, preds_T)
    message = str(err.value)
    assert 'PairWiseLoss' in message
    assert '(2, 4, 17, 23)' in message and '(2, 8, 9, 12)' in message
    assert 'resize' in message


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError,
                       match='PairWiseLoss: preds_S must be a 4-D'):
        pair_wise_loss(torch.randn(2, 4, 9), torch.randn(2, 4, 9))
    with pytest.raises(ValueError, match='scale must be in'):
        PairWiseLoss(scale=0)
    with pytest.raises(ValueError, match='scale must be in'):
        PairWiseLoss(scale=1.5)
    with pytest.raises(ValueError, match="pool must be one of"):
        PairWiseLoss(pool='median')


def test_registry_builds_the_loss():
    loss = MODELS.build(
        dict(type='mmstructkd.PairWiseLoss', scale=None, pool='avg',
             loss_weight=0.5))
    assert isinstance(loss, PairWiseLoss)
    assert loss.scale is None and loss.pool == 'avg'
    assert loss.loss_weight == 0.5
