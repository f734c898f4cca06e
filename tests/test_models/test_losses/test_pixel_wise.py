"""Pixel-wise KL loss of SKD against a naive float64 loop over pixels."""
import math

import pytest
import torch

from mmstructkd.models.losses.pixel_wise import PixelWiseLoss, pixel_wise_kl
from mmstructkd.registry import MODELS


def naive_pixel_wise(logits_S, logits_T, tau):
    """tau^2 * mean over (n, h, w) of sum_k pT (log pT - log pS)."""
    batch, classes, height, width = logits_S.shape
    total = 0.0
    for n in range(batch):
        for h in range(height):
            for w in range(width):
                zs = logits_S[n, :, h, w] / tau
                zt = logits_T[n, :, h, w] / tau
                log_ps = zs - torch.logsumexp(zs, 0)
                log_pt = zt - torch.logsumexp(zt, 0)
                total = total + (log_pt.exp() * (log_pt - log_ps)).sum()
    return tau**2 * total / (batch * height * width)


def random_logits(shape, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    logits_S = 3 * torch.randn(*shape, generator=gen, dtype=dtype)
    logits_T = 3 * torch.randn(*shape, generator=gen, dtype=dtype)
    return logits_S, logits_T


@pytest.mark.parametrize('tau', [1.0, 2.5])
def test_value_and_gradient_match_naive(tau):
    logits_S, logits_T = random_logits((2, 5, 7, 9), seed=1)
    leaf = logits_S.clone().requires_grad_()
    value = pixel_wise_kl(leaf, logits_T, tau=tau)
    value.backward()
    leaf64 = logits_S.double().requires_grad_()
    ref = naive_pixel_wise(leaf64, logits_T.double(), tau)
    ref.backward()
    assert value.dtype == torch.float32
    assert math.isclose(value.item(), ref.item(), rel_tol=1e-5)
    torch.testing.assert_close(leaf.grad.double(), leaf64.grad, rtol=1e-4,
                               atol=1e-7)


def test_identical_logits_give_zero_and_different_do_not():
    logits_S, logits_T = random_logits((2, 4, 5, 6))
    assert pixel_wise_kl(logits_T.clone(), logits_T).item() == pytest.approx(
        0, abs=1e-7)
    assert pixel_wise_kl(logits_S, logits_T).item() > 0.1


def test_batch_is_averaged_not_summed():
    # Unlike the official code, duplicating the batch leaves the loss as is.
    logits_S, logits_T = random_logits((1, 4, 5, 6))
    single = pixel_wise_kl(logits_S, logits_T)
    double = pixel_wise_kl(logits_S.repeat(2, 1, 1, 1),
                           logits_T.repeat(2, 1, 1, 1))
    torch.testing.assert_close(single, double)


def test_confident_teacher_is_finite():
    # Near one-hot teacher: pT underflows to 0 for most classes.
    logits_S, logits_T = random_logits((1, 6, 3, 4))
    leaf = logits_S.requires_grad_()
    value = pixel_wise_kl(leaf, 200 * logits_T)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(leaf.grad).all()


def test_half_precision_and_autocast_keep_float32_math():
    logits_S, logits_T = random_logits((2, 5, 7, 9), seed=2)
    half_S = logits_S.to(torch.bfloat16).requires_grad_()
    half_T = logits_T.to(torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = pixel_wise_kl(half_S, half_T, tau=2.0)
    value.backward()
    ref = naive_pixel_wise(half_S.double(), half_T.double(), 2.0)
    assert value.dtype == torch.float32
    assert math.isclose(value.item(), ref.item(), rel_tol=1e-5)
    assert half_S.grad.dtype == torch.bfloat16


def test_teacher_gets_no_gradient():
    logits_S, logits_T = random_logits((1, 3, 4, 5))
    logits_S.requires_grad_()
    logits_T.requires_grad_()
    pixel_wise_kl(logits_S, logits_T).backward()
    assert logits_T.grad is None and logits_S.grad is not None


def test_module_applies_loss_weight_and_tau():
    logits_S, logits_T = random_logits((2, 5, 7, 9))
    loss = PixelWiseLoss(tau=3.0, loss_weight=10.0)(logits_S, logits_T)
    torch.testing.assert_close(loss,
                               10.0 * pixel_wise_kl(logits_S, logits_T, 3.0))


def test_spatial_mismatch_names_loss_shapes_and_fix():
    with pytest.raises(ValueError) as err:
        pixel_wise_kl(torch.randn(2, 5, 7, 9), torch.randn(2, 5, 14, 18))
    message = str(err.value)
    assert 'PixelWiseLoss' in message and 'spatial' in message
    assert '(2, 5, 7, 9)' in message and '(2, 5, 14, 18)' in message
    assert 'Resize' in message


def test_class_mismatch_and_bad_arguments_are_errors():
    with pytest.raises(ValueError, match='PixelWiseLoss.*numbers of classes'):
        pixel_wise_kl(torch.randn(2, 5, 7, 9), torch.randn(2, 6, 7, 9))
    with pytest.raises(ValueError, match='PixelWiseLoss: preds_T must be a'):
        pixel_wise_kl(torch.randn(2, 5, 7, 9), torch.randn(5, 7, 9))
    with pytest.raises(ValueError, match='tau must be > 0'):
        PixelWiseLoss(tau=0)


def test_registry_builds_the_loss():
    loss = MODELS.build(
        dict(type='mmstructkd.PixelWiseLoss', tau=2.0, loss_weight=10.0))
    assert isinstance(loss, PixelWiseLoss)
    assert (loss.tau, loss.loss_weight) == (2.0, 10.0)
