"""Tests of SKD's holistic (adversarial) losses (the non-finite guard used
in the critic step: tests/test_models/test_utils/test_nonfinite_guard.py)."""
import pytest
import torch
from torch import nn

from mmstructkd.models.discriminators.sagan import SAGANDiscriminator
from mmstructkd.models.losses.adversarial import (AdversarialGeneratorLoss,
                                                  DiscriminatorLoss,
                                                  adversarial_generator_loss,
                                                  discriminator_loss,
                                                  frozen_discriminator_scores,
                                                  gradient_penalty)
from mmstructkd.models.utils import NonFiniteGuard
from mmstructkd.registry import MODELS

N, K, H, W = 3, 5, 13, 17


def make_discriminator(mode='logits', seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    D = SAGANDiscriminator(num_classes=K, base_channels=8, input_mode=mode)
    with torch.no_grad():
        for stage in D.stages[2:]:
            stage[-1].gamma.fill_(0.5)  # attention takes part in gradients
    # eval: spectral norm uses its stored vectors, so repeated calls agree.
    return D.to(dtype).eval()


def make_inputs(seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    preds_S = torch.randn(N, K, H, W, generator=g, dtype=dtype)
    preds_T = 2 * torch.randn(N, K, H, W, generator=g, dtype=dtype)
    image = torch.randn(N, 3, 8 * H + 1, 8 * W - 3, generator=g, dtype=dtype)
    return preds_S, preds_T, image


def per_sample_scores(D, x, image=None):
    # One image at a time: nothing can leak between samples.
    return torch.stack([
        D(x[n:n + 1], None if image is None else image[n:n + 1])[0]
        for n in range(x.shape[0])
    ])


def naive_gradient_penalty(D, real, fake, alpha, image=None):
    """mean_n (||grad_x D(x)_n|| - 1)^2 with a loop and explicit sqrt."""
    total = 0
    for n in range(real.shape[0]):
        img = None if image is None else image[n:n + 1]
        real_in = D.build_input(real[n:n + 1], img)
        fake_in = D.build_input(fake[n:n + 1], img)
        x = (alpha[n] * real_in + (1 - alpha[n]) * fake_in).detach()
        x.requires_grad_(True)
        (grad, ) = torch.autograd.grad(
            D.score_input(x)[0], x, create_graph=True)
        total = total + (torch.sqrt((grad**2).sum()) - 1)**2
    return total / real.shape[0]


def seeded_alpha(seed, n=N):
    return torch.rand(
        n, generator=torch.Generator().manual_seed(seed),
        dtype=torch.float64)


def param_grads(loss, module):
    grads = torch.autograd.grad(
        loss, list(module.parameters()), retain_graph=True,
        allow_unused=True)
    return [
        torch.zeros_like(p) if g is None else g
        for g, p in zip(grads, module.parameters())
    ]


def assert_grads_close(grads_a, grads_b):
    assert len(grads_a) == len(grads_b)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------
# gradient penalty


@pytest.mark.parametrize('mode', ['logits', 'softmax_image'])
def test_gradient_penalty_matches_naive(mode):
    D = make_discriminator(mode)
    preds_S, preds_T, image = make_inputs()
    image = image if mode == 'softmax_image' else None
    gp = gradient_penalty(
        D, preds_T, preds_S, image,
        generator=torch.Generator().manual_seed(11))
    expected = naive_gradient_penalty(D, preds_T, preds_S, seeded_alpha(11),
                                      image)
    torch.testing.assert_close(gp, expected)
    assert gp.item() > 0.1  # far from 0: a real comparison
    # The penalty trains D: same gradients w.r.t. every parameter.
    assert_grads_close(param_grads(gp, D), param_grads(expected, D))


def test_gradient_penalty_alpha_is_per_sample_and_seeded():
    D = make_discriminator()
    preds_S, preds_T, _ = make_inputs()
    gp_a = gradient_penalty(
        D, preds_T, preds_S, generator=torch.Generator().manual_seed(3))
    gp_b = gradient_penalty(
        D, preds_T, preds_S, generator=torch.Generator().manual_seed(3))
    gp_c = gradient_penalty(
        D, preds_T, preds_S, generator=torch.Generator().manual_seed(4))
    assert gp_a.item() == gp_b.item()
    assert gp_a.item() != gp_c.item()
    # One shared a for the whole batch would give another value.
    shared = seeded_alpha(3, n=1).expand(N)
    assert not torch.allclose(
        gp_a, naive_gradient_penalty(D, preds_T, preds_S, shared))


def test_gradient_penalty_any_discriminator():

    class PlainCritic(nn.Module):
        """No build_input/score_input: called as D(x)."""

        def __init__(self, critic):
            super().__init__()
            self.critic = critic

        def forward(self, x):
            return self.critic(x)

    D = make_discriminator()
    preds_S, preds_T, _ = make_inputs()
    gp = gradient_penalty(
        PlainCritic(D), preds_T, preds_S,
        generator=torch.Generator().manual_seed(5))
    expected = naive_gradient_penalty(D, preds_T, preds_S, seeded_alpha(5))
    torch.testing.assert_close(gp, expected)


def test_gradient_penalty_finite_where_gradient_vanishes():

    class ScaledSum(nn.Module):

        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return self.scale * x.flatten(1).sum(1)

    critic = ScaledSum()
    gp = gradient_penalty(critic, torch.randn(2, 3, 4, 4),
                          torch.randn(2, 3, 4, 4))
    assert gp.item() == pytest.approx(1.0)  # ||0|| = 0 -> (0 - 1)^2
    gp.backward()
    assert torch.isfinite(critic.scale.grad)


def test_gradient_penalty_detaches_inputs_and_checks_shapes():
    D = make_discriminator(dtype=torch.float32)
    preds_S = torch.randn(N, K, H, W, requires_grad=True)
    preds_T = torch.randn(N, K, H, W, requires_grad=True)
    gradient_penalty(D, preds_T, preds_S).backward()
    assert preds_S.grad is None and preds_T.grad is None
    with pytest.raises(ValueError, match='same shape'):
        gradient_penalty(D, preds_T, preds_S[..., :-1])


# --------------------------------------------------------------------------
# critic step


def test_wgan_discriminator_loss_matches_naive():
    D = make_discriminator()
    preds_S, preds_T, _ = make_inputs()
    out = discriminator_loss(
        D, preds_S, preds_T, loss_type='wgan', gp_weight=10.0,
        generator=torch.Generator().manual_seed(21))

    scores_T = per_sample_scores(D, preds_T)
    scores_S = per_sample_scores(D, preds_S)
    real = -scores_T.sum() / N
    fake = scores_S.sum() / N
    gp = 10.0 * naive_gradient_penalty(D, preds_T, preds_S, seeded_alpha(21))
    torch.testing.assert_close(out['loss_d_real'], real)
    torch.testing.assert_close(out['loss_d_fake'], fake)
    torch.testing.assert_close(out['loss_gp'], gp)
    torch.testing.assert_close(out['d_total'], real + fake + gp)
    torch.testing.assert_close(out['d_wasserstein'], -(real + fake))
    assert not out['d_wasserstein'].requires_grad
    assert_grads_close(
        param_grads(out['d_total'], D), param_grads(real + fake + gp, D))


def test_wgan_default_gp_weight_is_10():
    D = make_discriminator()
    preds_S, preds_T, _ = make_inputs()
    out = discriminator_loss(
        D, preds_S, preds_T, generator=torch.Generator().manual_seed(2))
    gp = gradient_penalty(
        D, preds_T, preds_S, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(out['loss_gp'], 10 * gp)


def naive_hinge_terms(D, preds_S, preds_T, image):
    scores_T = per_sample_scores(D, preds_T, image)
    scores_S = per_sample_scores(D, preds_S, image)
    real = sum(max(1 - s, 0) for s in scores_T) / N
    fake = sum(max(1 + s, 0) for s in scores_S) / N
    return scores_T, scores_S, real, fake


@pytest.mark.parametrize('straddle', ['real', 'fake'])
def test_hinge_discriminator_loss_matches_naive(straddle):
    D = make_discriminator(mode='softmax_image')
    preds_S, preds_T, image = make_inputs()
    with torch.no_grad():
        D.head.weight.mul_(300)  # spread the scores
        # Shift the scores so the hinge of one side has active and inactive
        # samples: both branches of its relu are exercised.
        scores = per_sample_scores(
            D, preds_T if straddle == 'real' else preds_S, image)
        kink = 1.0 if straddle == 'real' else -1.0
        D.head.bias.add_(kink - (scores.max() + scores.min()) / 2)
    scores_T, scores_S, real, fake = naive_hinge_terms(
        D, preds_S, preds_T, image)
    margins = 1 - scores_T if straddle == 'real' else 1 + scores_S
    assert (margins > 0).any() and (margins < 0).any()

    out = discriminator_loss(D, preds_S, preds_T, image, loss_type='hinge')
    torch.testing.assert_close(out['loss_d_real'], real)
    torch.testing.assert_close(out['loss_d_fake'], fake)
    assert out['loss_gp'].item() == 0  # official hinge: no penalty
    torch.testing.assert_close(out['d_total'], real + fake)
    assert_grads_close(
        param_grads(out['d_total'], D), param_grads(real + fake, D))

    out = discriminator_loss(
        D, preds_S, preds_T, image, loss_type='hinge', gp_weight=10.0,
        generator=torch.Generator().manual_seed(8))
    gp = 10.0 * naive_gradient_penalty(D, preds_T, preds_S, seeded_alpha(8),
                                       image)
    torch.testing.assert_close(out['d_total'], real + fake + gp)


def test_discriminator_step_gives_no_gradient_to_student_or_teacher():
    D = make_discriminator(dtype=torch.float32).train()
    torch.manual_seed(0)
    student = nn.Conv2d(3, K, 1)
    image = torch.randn(N, 3, H, W)
    preds_S = student(image)
    preds_T = torch.randn(N, K, H, W, requires_grad=True)
    out = DiscriminatorLoss()(preds_S, preds_T, discriminator=D)
    out['d_total'].backward()
    assert student.weight.grad is None and student.bias.grad is None
    assert preds_T.grad is None
    for conv in (stage[0] for stage in D.stages):
        grad = conv.parametrizations.weight.original.grad
        assert grad is not None and grad.abs().sum() > 0


def test_discriminator_loss_module_weights_terms():
    D = make_discriminator()
    preds_S, preds_T, _ = make_inputs()
    module = DiscriminatorLoss(loss_type='wgan', gp_weight=5.0,
                               loss_weight=0.1)
    out = module(preds_S, preds_T, discriminator=D,
                 generator=torch.Generator().manual_seed(9))
    ref = discriminator_loss(D, preds_S, preds_T, gp_weight=5.0,
                             generator=torch.Generator().manual_seed(9))
    for key in ('loss_d_real', 'loss_d_fake', 'loss_gp', 'd_total'):
        torch.testing.assert_close(out[key], 0.1 * ref[key])
    torch.testing.assert_close(out['d_wasserstein'], ref['d_wasserstein'])
    # parse_losses sums keys containing 'loss': that sum is the total.
    summed = sum(v for k, v in out.items() if 'loss' in k)
    torch.testing.assert_close(summed, out['d_total'])


@pytest.mark.parametrize('loss_type', ['wgan', 'hinge'])
def test_discriminator_loss_reports_unweighted_scores(loss_type):
    # D(teacher) and D(student) are logged per step (disc.d_score_T/S) so
    # tools/visualize_distill.py can plot them over training.
    D = make_discriminator()
    preds_S, preds_T, _ = make_inputs()
    out = DiscriminatorLoss(loss_type=loss_type, loss_weight=0.1)(
        preds_S, preds_T, discriminator=D)
    with torch.no_grad():
        torch.testing.assert_close(out['d_score_T'], D(preds_T).mean())
        torch.testing.assert_close(out['d_score_S'], D(preds_S).mean())
    torch.testing.assert_close(out['d_score_T'] - out['d_score_S'],
                               out['d_wasserstein'])
    assert not out['d_score_T'].requires_grad
    # Not loss terms: parse_losses sums only keys containing 'loss'.
    summed = sum(v for k, v in out.items() if 'loss' in k)
    torch.testing.assert_close(summed, out['d_total'])


# --------------------------------------------------------------------------
# student (generator) step


@pytest.mark.parametrize('loss_type', ['wgan', 'hinge'])
@pytest.mark.parametrize('mode', ['logits', 'softmax_image'])
def test_generator_loss_matches_naive(mode, loss_type):
    D = make_discriminator(mode)
    preds_S, _, image = make_inputs()
    image = image if mode == 'softmax_image' else None
    preds_S.requires_grad_(True)
    loss = AdversarialGeneratorLoss(loss_type=loss_type, loss_weight=0.1)(
        preds_S, discriminator=D, image=image)

    naive_S = preds_S.detach().clone().requires_grad_(True)
    expected = -0.1 * per_sample_scores(D, naive_S, image).sum() / N
    torch.testing.assert_close(loss, expected)
    (grad, ) = torch.autograd.grad(loss, preds_S)
    (expected_grad, ) = torch.autograd.grad(expected, naive_S)
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize('mode', ['logits', 'softmax_image'])
def test_generator_term_gives_no_gradient_to_discriminator(mode):
    D = make_discriminator(mode, dtype=torch.float32).train()
    torch.manual_seed(0)
    student = nn.Conv2d(3, K, 1)
    image = torch.randn(N, 3, H, W)
    loss = AdversarialGeneratorLoss()(
        student(image), discriminator=D,
        image=image if mode == 'softmax_image' else None)
    loss.backward()
    assert all(p.grad is None for p in D.parameters())
    assert all(p.requires_grad for p in D.parameters())  # nothing toggled
    assert student.weight.grad.abs().sum() > 0


def test_frozen_scores_bypass_data_parallel_wrapper():
    D = make_discriminator()
    preds_S, _, _ = make_inputs()
    torch.testing.assert_close(
        frozen_discriminator_scores(nn.DataParallel(D), preds_S), D(preds_S))


def sgd_step(module, lr):
    # Plain SGD by hand: building a torch.optim optimizer costs seconds of
    # imports on first use, and the test is about which grads exist.
    with torch.no_grad():
        for p in module.parameters():
            if p.grad is not None:
                p.sub_(lr * p.grad)
            p.grad = None


def test_alternating_steps_touch_only_their_own_parameters():
    """The intended call pattern: student step, then one critic step."""
    torch.manual_seed(0)
    student, teacher = nn.Conv2d(3, K, 3, padding=1), nn.Conv2d(3, K, 1)
    D = SAGANDiscriminator(num_classes=K, base_channels=8)
    gen_loss, d_loss = AdversarialGeneratorLoss(), DiscriminatorLoss()
    guard = NonFiniteGuard(max_consecutive=1, name='discriminator')
    for _ in range(2):
        image = torch.randn(2, 3, H, W)
        with torch.no_grad():
            preds_T = teacher(image)
        preds_S = student(image)

        d_before = [p.detach().clone() for p in D.parameters()]
        gen_loss(preds_S, discriminator=D).backward()
        assert all(p.grad is None for p in D.parameters())
        sgd_step(student, lr=0.01)
        assert all(torch.equal(a, b) for a, b in zip(d_before, D.parameters()))

        s_before = [p.detach().clone() for p in student.parameters()]
        losses = d_loss(preds_S, preds_T, discriminator=D)
        assert guard.check(losses)
        losses['d_total'].backward()
        assert all(p.grad is None for p in student.parameters())
        sgd_step(D, lr=4e-4)
        assert all(
            torch.equal(a, b) for a, b in zip(s_before, student.parameters()))
        assert not all(
            torch.equal(a, b) for a, b in zip(d_before, D.parameters()))


def test_float32_under_autocast():
    D = make_discriminator(dtype=torch.float32)
    preds_S, preds_T, _ = make_inputs(dtype=torch.float32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = adversarial_generator_loss(D, preds_S.bfloat16())
        out = discriminator_loss(D, preds_S.bfloat16(), preds_T.bfloat16())
    assert loss.dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in out.values())


def test_bad_loss_type_and_shapes_give_clear_errors():
    with pytest.raises(ValueError, match='loss_type must be one of'):
        AdversarialGeneratorLoss(loss_type='wgan-gp')
    with pytest.raises(ValueError, match='loss_type must be one of'):
        DiscriminatorLoss(loss_type='lsgan')
    with pytest.raises(ValueError, match='gp_weight must be >= 0'):
        DiscriminatorLoss(gp_weight=-1.0)
    D = make_discriminator()
    preds_S, preds_T, _ = make_inputs()
    with pytest.raises(ValueError, match='loss_type must be one of'):
        discriminator_loss(D, preds_S, preds_T, loss_type='hinge-gp')
    with pytest.raises(ValueError, match=r'preds_S \(3, 5, 13, 16\)'):
        discriminator_loss(D, preds_S[..., :-1], preds_T)


def test_losses_built_from_registry():
    assert isinstance(
        MODELS.build(dict(type='AdversarialGeneratorLoss', loss_weight=0.1)),
        AdversarialGeneratorLoss)
    built = MODELS.build(dict(type='DiscriminatorLoss', loss_type='hinge'))
    assert isinstance(built, DiscriminatorLoss) and built.loss_type == 'hinge'
