"""FBKD: the loss against a naive float64 computation of its formulas, the
connectors' masks, poolings and non-local blocks against naive float64
recomputations, and the registry."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmstructkd.models.connectors import (FBKDStudentConnector,
                                          FBKDTeacherConnector,
                                          fbkd_attention_masks)
from mmstructkd.models.losses import FBKDLoss, fbkd_loss
from mmstructkd.registry import MODELS

WEIGHTS = dict(mask_l2_weight=0.7, channel_weight=0.4, spatial_weight=0.3,
               nonlocal_weight=0.2)


# ----------------------------------------------------------------------
# Naive references (float64, loops)
# ----------------------------------------------------------------------
def naive_masks(x, spatial_T, channel_T):
    """Softmax of mean |x| over channels (positions) and over positions
    (channels), scaled by H*W and C, one sample at a time."""
    x = x.double()
    n, c, h, w = x.shape
    spatial = torch.zeros(n, 1, h, w, dtype=torch.float64)
    channel = torch.zeros(n, c, 1, 1, dtype=torch.float64)
    for i in range(n):
        a_s = x[i].abs().sum(0) / c
        e = torch.exp(a_s / spatial_T)
        spatial[i, 0] = h * w * e / e.sum()
        a_c = torch.stack([x[i, k].abs().sum() / (h * w) for k in range(c)])
        e = torch.exp(a_c / channel_T)
        channel[i, :, 0, 0] = c * e / e.sum()
    return spatial, channel


def conv1x1(x, conv):
    return torch.einsum('oc,nchw->nohw', conv.weight.double()[:, :, 0, 0],
                        x) + conv.bias.double()[None, :, None, None]


def first_conv(module):
    """The Conv2d inside a ConvModule (or a Sequential(ConvModule, pool))."""
    return module[0].conv if isinstance(module, torch.nn.Sequential) \
        else module.conv


def naive_non_local(block, x, pool):
    """Dot-product non-local block without norm: x + W_out(A g), with
    A[i, j] = theta_i . phi_j / P over the P (pooled) positions j."""
    theta = conv1x1(x, first_conv(block.theta))
    phi = conv1x1(x, first_conv(block.phi))
    g = conv1x1(x, first_conv(block.g))
    if pool > 1:
        phi, g = F.max_pool2d(phi, pool), F.max_pool2d(g, pool)
    n, inter, h, w = theta.shape
    out = torch.zeros_like(theta)
    positions = phi.shape[2] * phi.shape[3]
    for b in range(n):
        th = theta[b].reshape(inter, -1)
        ph = phi[b].reshape(inter, -1)
        gg = g[b].reshape(inter, -1)
        for i in range(h * w):
            weights = (th[:, i:i + 1] * ph).sum(0) / positions
            out[b].view(inter, -1)[:, i] = (gg * weights).sum(1)
    return x + conv1x1(out, block.conv_out.conv)


def naive_student(conn, x, pool):
    x = x.double()
    spatial_mask, channel_mask = naive_masks(x, conn.spatial_T,
                                             conn.channel_T)
    lin = conn.channel_wise_adaptation
    channel_pool = x.mean((2, 3)) @ lin.weight.double().T + lin.bias.double()
    sp = conn.spatial_wise_adaptation
    spatial_pool = F.conv2d(x.mean(1, keepdim=True), sp.weight.double(),
                            sp.bias.double(), padding=1)
    relation = conv1x1(naive_non_local(conn.non_local, x, pool),
                       conn.non_local_adaptation)
    feat = conv1x1(x, conn.adaptation_layers)
    return (spatial_mask, channel_mask, channel_pool, spatial_pool, relation,
            feat)


def naive_teacher(conn, x, pool):
    x = x.double()
    spatial_mask, channel_mask = naive_masks(x, conn.spatial_T,
                                             conn.channel_T)
    return (spatial_mask, channel_mask, x.mean(1, keepdim=True),
            naive_non_local(conn.non_local, x, pool), x)


def naive_fbkd(s_in, t_in, mask_l2_weight, channel_weight, spatial_weight,
               nonlocal_weight, use_channel_mask=False):
    s_sm, s_cm, s_cp, s_sp, s_rel, s_feat = s_in
    t_sm, t_cm, t_sp, t_rel, t_feat = t_in
    n, c, h, w = t_feat.shape
    sm = ((s_sm + t_sm) / 2).detach()
    cm = ((s_cm + t_cm) / 2).detach() if use_channel_mask else None
    feat = 0.0
    channel = 0.0
    for b in range(n):
        for k in range(c):
            weight = sm[b, 0] * (cm[b, k, 0, 0] if cm is not None else 1.0)
            feat = feat + (weight * (s_feat[b, k] - t_feat[b, k])**2).sum()
            channel = channel + (s_cp[b, k] - t_feat[b, k].mean())**2
    spatial = ((s_sp - t_sp)**2).sum()
    relation = ((s_rel - t_rel)**2).sum()
    return (mask_l2_weight * feat.sqrt() + channel_weight * channel.sqrt() +
            spatial_weight * spatial.sqrt() +
            nonlocal_weight * relation.sqrt())


def random_inputs(n=2, c_s=6, c_t=6, h=5, w=7, seed=0, grad=True):
    gen = torch.Generator().manual_seed(seed)

    def r(*shape, positive=False):
        t = torch.randn(*shape, generator=gen)
        return t.abs() + 0.1 if positive else t

    s_in = [r(n, 1, h, w, positive=True), r(n, c_s, 1, 1, positive=True),
            r(n, c_t), r(n, 1, h, w), r(n, c_t, h, w), r(n, c_t, h, w)]
    t_in = [r(n, 1, h, w, positive=True), r(n, c_t, 1, 1, positive=True),
            r(n, 1, h, w), r(n, c_t, h, w), r(n, c_t, h, w)]
    if grad:
        s_in = [t.requires_grad_() for t in s_in]
        t_in[3].requires_grad_()  # the teacher-side relations
    return s_in, t_in


def as_double_leaves(tensors):
    return [t.detach().double().requires_grad_(t.requires_grad)
            for t in tensors]


# ----------------------------------------------------------------------
# The loss
# ----------------------------------------------------------------------
@pytest.mark.parametrize('use_channel_mask', [False, True])
def test_loss_value_and_gradients_match_naive(use_channel_mask):
    s_in, t_in = random_inputs(seed=1)
    value = fbkd_loss(s_in, t_in, use_channel_mask=use_channel_mask,
                      **WEIGHTS)
    value.backward()
    s64, t64 = as_double_leaves(s_in), as_double_leaves(t_in)
    ref = naive_fbkd(s64, t64, use_channel_mask=use_channel_mask, **WEIGHTS)
    ref.backward()
    assert value.dtype == torch.float32
    assert math.isclose(value.item(), ref.item(), rel_tol=1e-5)
    for leaf, leaf64 in zip(s_in[2:] + [t_in[3]], s64[2:] + [t64[3]]):
        torch.testing.assert_close(leaf.grad.double(), leaf64.grad,
                                   rtol=1e-4, atol=1e-9)
    # The masks are constants: no gradient reaches them.
    assert s_in[0].grad is None and s_in[1].grad is None


def test_each_term_is_weighted_separately():
    s_in, t_in = random_inputs(seed=2, grad=False)
    s64, t64 = as_double_leaves(s_in), as_double_leaves(t_in)
    for name in WEIGHTS:
        only = {k: (1.0 if k == name else 0.0) for k in WEIGHTS}
        value = fbkd_loss(s_in, t_in, **only)
        ref = naive_fbkd(s64, t64, **only)
        assert math.isclose(value.item(), ref.item(), rel_tol=1e-5), name
        assert value.item() > 0, name


def test_module_defaults_and_loss_weight():
    s_in, t_in = random_inputs(c_s=4, c_t=8, seed=3, grad=False)
    loss = FBKDLoss(loss_weight=2.5)
    assert (loss.mask_l2_weight, loss.channel_weight, loss.spatial_weight,
            loss.nonlocal_weight) == (7e-5, 4e-3, 4e-3, 7e-5)
    ref = naive_fbkd(as_double_leaves(s_in), as_double_leaves(t_in), 7e-5,
                     4e-3, 4e-3, 7e-5)
    assert math.isclose(loss(s_in, t_in).item(), 2.5 * ref.item(),
                        rel_tol=1e-5)


def test_identical_inputs_give_zero_and_finite_gradients():
    s_in, t_in = random_inputs(seed=4)
    s_in[2] = t_in[4].detach().mean((2, 3)).requires_grad_()
    s_in[3] = t_in[2].detach().clone().requires_grad_()
    s_in[4] = t_in[3].detach().clone().requires_grad_()
    s_in[5] = t_in[4].detach().clone().requires_grad_()
    value = fbkd_loss(s_in, t_in)
    value.backward()
    assert value.item() == 0
    for t in s_in[2:]:
        assert torch.isfinite(t.grad).all()


def test_loss_under_autocast_is_float32():
    s_in, t_in = random_inputs(seed=5, grad=False)
    half_S = [t.to(torch.bfloat16).requires_grad_() for t in s_in]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = FBKDLoss()(half_S, [t.to(torch.bfloat16) for t in t_in])
    value.backward()
    assert value.dtype == torch.float32
    assert half_S[5].grad.dtype == torch.bfloat16


def test_loss_errors_name_the_loss():
    s_in, t_in = random_inputs(c_s=4, c_t=8, grad=False)
    with pytest.raises(ValueError, match='FBKDLoss: s_input must be the '
                       '6-tuple'):
        FBKDLoss()(s_in[5], t_in)
    with pytest.raises(ValueError, match='FBKDLoss: t_input must be the '
                       '5-tuple.*FBKDTeacherConnector'):
        FBKDLoss()(s_in, t_in[:4])
    bad = list(s_in)
    bad[5] = torch.randn(2, 4, 5, 7)
    with pytest.raises(ValueError, match='FBKDLoss.*teacher_channels to 8'):
        FBKDLoss()(bad, t_in)
    with pytest.raises(ValueError, match='use_channel_mask needs'):
        FBKDLoss(use_channel_mask=True)(s_in, t_in)


# ----------------------------------------------------------------------
# The connectors
# ----------------------------------------------------------------------
@pytest.mark.parametrize('temperatures', [(0.5, 0.5), (2.0, 0.1)])
def test_masks_match_naive_and_sum_to_hw_and_c(temperatures):
    x = torch.randn(3, 5, 4, 6, generator=torch.Generator().manual_seed(6))
    spatial, channel = fbkd_attention_masks(x, *temperatures)
    ref_spatial, ref_channel = naive_masks(x, *temperatures)
    assert spatial.shape == (3, 1, 4, 6) and channel.shape == (3, 5, 1, 1)
    torch.testing.assert_close(spatial.double(), ref_spatial, rtol=1e-5,
                               atol=1e-6)
    torch.testing.assert_close(channel.double(), ref_channel, rtol=1e-5,
                               atol=1e-6)
    torch.testing.assert_close(spatial.sum((1, 2, 3)), torch.full((3, ),
                                                                  24.))
    torch.testing.assert_close(channel.sum((1, 2, 3)), torch.full((3, ), 5.))
    assert (spatial > 0).all() and (channel > 0).all()
    # Uniform magnitudes give masks of ones.
    ones_s, ones_c = fbkd_attention_masks(-torch.ones(2, 3, 4, 4))
    torch.testing.assert_close(ones_s, torch.ones_like(ones_s))
    torch.testing.assert_close(ones_c, torch.ones_like(ones_c))


@pytest.mark.parametrize('sub_sample,pool', [(False, 1), (True, 2),
                                             (True, 4)])
def test_connectors_match_naive(sub_sample, pool):
    torch.manual_seed(0)
    kwargs = dict(reduction=2, norm_cfg=None, mode='dot_product',
                  sub_sample=sub_sample, maxpool_stride=max(pool, 2),
                  zeros_init=False, spatial_T=0.7, channel_T=0.3)
    conn_S = FBKDStudentConnector(4, teacher_channels=6, **kwargs)
    conn_T = FBKDTeacherConnector(6, **kwargs)
    gen = torch.Generator().manual_seed(7)
    x_S = torch.randn(2, 4, 8, 8, generator=gen)
    x_T = torch.randn(2, 6, 8, 8, generator=gen)
    out_S, out_T = conn_S(x_S), conn_T(x_T)
    assert [tuple(t.shape) for t in out_S] == [
        (2, 1, 8, 8), (2, 4, 1, 1), (2, 6), (2, 1, 8, 8), (2, 6, 8, 8),
        (2, 6, 8, 8)]
    assert [tuple(t.shape) for t in out_T] == [
        (2, 1, 8, 8), (2, 6, 1, 1), (2, 1, 8, 8), (2, 6, 8, 8), (2, 6, 8, 8)]
    assert out_T[4] is x_T
    for got, ref in zip(out_S, naive_student(conn_S, x_S, pool)):
        torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-5)
    for got, ref in zip(out_T, naive_teacher(conn_T, x_T, pool)):
        torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-5)
    # Both non-local blocks get gradients from the loss.
    FBKDLoss(**WEIGHTS)(out_S, out_T).backward()
    for conn in (conn_S, conn_T):
        for name, p in conn.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_connector_defaults_follow_mmrazor():
    conn = FBKDStudentConnector(8)
    assert conn.teacher_channels == 8
    assert conn.non_local.mode == 'dot_product'
    # zeros_init with a norm layer: the block starts as the identity.
    conn_T = FBKDTeacherConnector(8, sub_sample=True, maxpool_stride=2)
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(conn_T(x)[3], x)


def test_connector_errors():
    with pytest.raises(ValueError, match=r'FBKDStudentConnector expects one '
                       r'\(N, 4, H, W\) map, got \(2, 8, 5, 5\)'):
        FBKDStudentConnector(4)(torch.randn(2, 8, 5, 5))
    with pytest.raises(ValueError, match='FBKDTeacherConnector expects one.*'
                       'its own connector'):
        FBKDTeacherConnector(4)((torch.randn(2, 4, 5, 5), ))
    with pytest.raises(ValueError, match='temperatures must be > 0'):
        FBKDTeacherConnector(4, spatial_T=0)


def test_registry_builds_loss_and_connectors():
    loss = MODELS.build(dict(type='mmstructkd.FBKDLoss', loss_weight=2.0,
                             nonlocal_weight=1e-4))
    assert isinstance(loss, FBKDLoss)
    assert (loss.loss_weight, loss.nonlocal_weight) == (2.0, 1e-4)
    conn = MODELS.build(dict(type='mmstructkd.FBKDStudentConnector',
                             in_channels=16, teacher_channels=32,
                             reduction=4, sub_sample=True, maxpool_stride=8))
    assert isinstance(conn, FBKDStudentConnector)
    assert conn.non_local.maxpool_stride == 8
    assert isinstance(
        MODELS.build(dict(type='mmstructkd.FBKDTeacherConnector',
                          in_channels=32)), FBKDTeacherConnector)
