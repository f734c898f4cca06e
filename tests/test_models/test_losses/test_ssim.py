"""Structural similarity (SSIM) distillation loss against a naive float64
implementation (2-D window, explicit loop over window offsets), against
pytorch_msssim and kornia, on single maps and FPN levels."""
import inspect
import math

import pytest
import torch

from mmstructkd.models.losses import ssim as ssim_module
from mmstructkd.models.losses.ssim import (LOSS_NAME,
                                           StructuralSimilarityLoss,
                                           fitted_window_size,
                                           gaussian_window_1d,
                                           mean_ssim, min_max_rescale,
                                           ssim_map,
                                           structural_similarity_loss)
from mmstructkd.registry import MODELS

C1 = 0.01**2
C2 = 0.03**2


# ---------------------------------------------------------------- naive ---
def naive_rescale(x, normalize):
    """(x - min) / (max - min) per sample (or per sample and channel)."""
    if normalize == 'none':
        return x
    out = torch.empty_like(x)
    for n in range(x.shape[0]):
        groups = [slice(None)] if normalize == 'sample' else range(
            x.shape[1])
        for c in groups:
            part = x[n, c]
            low, high = part.min(), part.max()
            out[n, c] = (part - low) / torch.clamp(high - low, min=1e-6)
    return out


def naive_window_2d(size, sigma):
    centre = (size - 1) / 2
    window = torch.tensor([[
        math.exp(-((i - centre)**2 + (j - centre)**2) / (2 * sigma**2))
        for j in range(size)
    ] for i in range(size)], dtype=torch.float64)
    return window / window.sum()


def naive_ssim_map(x, y, size, sigma):
    """Gaussian-weighted local statistics by summing shifted copies."""
    window = naive_window_2d(size, sigma)
    out_h, out_w = x.shape[-2] - size + 1, x.shape[-1] - size + 1

    def local_mean(z):
        total = 0
        for i in range(size):
            for j in range(size):
                total = total + window[i, j] * z[..., i:i + out_h,
                                                 j:j + out_w]
        return total

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov = local_mean(x * y) - mu_x * mu_y
    return ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / (
        (mu_x**2 + mu_y**2 + C1) * (var_x + var_y + C2))


def naive_level_loss(s, t, normalize='sample', window_size=11, sigma=1.5):
    # The documented rule for small levels: the largest odd window that
    # fits, sigma unchanged.
    size = min(window_size, s.shape[-2], s.shape[-1])
    if size % 2 == 0:
        size -= 1
    s, t = naive_rescale(s, normalize), naive_rescale(t, normalize)
    return 1 - naive_ssim_map(s, t, size, sigma).mean()


def random_maps(shape, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    maps_S = 3 * torch.randn(*shape, generator=gen, dtype=dtype) + 1
    # A correlated teacher, so SSIM is neither ~0 nor ~1.
    maps_T = maps_S + 2 * torch.randn(*shape, generator=gen, dtype=dtype)
    return maps_S, maps_T


# ---------------------------------------------------------- the window ---
def test_gaussian_window_matches_formula():
    window = gaussian_window_1d(11, 1.5, dtype=torch.float64)
    torch.testing.assert_close(
        window[:, None] * window[None], naive_window_2d(11, 1.5))
    assert window.sum().item() == pytest.approx(1.0)
    assert gaussian_window_1d(1, 1.5).tolist() == [1.0]


@pytest.mark.parametrize('height, width, expected', [
    (100, 167, 11), (11, 11, 11), (7, 11, 7), (10, 12, 9), (5, 5, 5),
    (6, 8, 5), (3, 3, 3), (2, 9, 1), (1, 1, 1)
])
def test_fitted_window_is_largest_odd_that_fits(height, width, expected):
    assert fitted_window_size(height, width, 11) == expected


# ------------------------------------------------------ value, gradient ---
@pytest.mark.parametrize('shape, normalize', [
    ((2, 3, 23, 31), 'sample'),
    ((1, 4, 17, 13), 'channel'),
    ((2, 2, 15, 19), 'none'),
    ((2, 3, 7, 11), 'sample'),
    ((1, 2, 6, 9), 'sample'),
])
def test_value_and_gradients_match_naive(shape, normalize):
    maps_S, maps_T = random_maps(shape, seed=sum(shape))
    if normalize == 'none':
        maps_S, maps_T = maps_S.sigmoid(), maps_T.sigmoid()
    leaf_S = maps_S.clone().requires_grad_()
    leaf_T = maps_T.clone().requires_grad_()
    value = structural_similarity_loss(leaf_S, leaf_T, normalize=normalize)
    value.backward()
    ref_S = maps_S.clone().requires_grad_()
    ref_T = maps_T.clone().requires_grad_()
    ref = naive_level_loss(ref_S, ref_T, normalize)
    ref.backward()
    assert 0.05 < ref.item() < 1.5
    assert value.item() == pytest.approx(ref.item(), rel=1e-10)
    torch.testing.assert_close(leaf_S.grad, ref_S.grad, rtol=1e-7,
                               atol=1e-12)
    torch.testing.assert_close(leaf_T.grad, ref_T.grad, rtol=1e-7,
                               atol=1e-12)


def test_float32_student_only_gradient_matches_naive():
    # The usual distillation call: float32, the teacher needs no gradient
    # (its statistics are blurred apart from the student's).
    maps_S, maps_T = random_maps((2, 5, 21, 27), seed=3)
    leaf = maps_S.float().requires_grad_()
    value = structural_similarity_loss(leaf, maps_T.float())
    value.backward()
    ref_S = maps_S.clone().requires_grad_()
    ref = naive_level_loss(ref_S, maps_T)
    ref.backward()
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(ref.item(), rel=1e-5)
    torch.testing.assert_close(leaf.grad.double(), ref_S.grad, rtol=1e-3,
                               atol=1e-7)


@pytest.mark.parametrize('teacher_grad', [False, True])
def test_channel_chunks_give_the_same_value_and_gradients(
        monkeypatch, teacher_grad):
    # Two channels per chunk on CPU: chunks of 2, 2 and 1 channels.
    shape = (2, 5, 17, 19)
    monkeypatch.setattr(ssim_module, 'CPU_CHUNK_ELEMENTS',
                        5 * 2 * 17 * 19 * 2)
    maps_S, maps_T = random_maps(shape, seed=11)
    threads = torch.get_num_threads()

    def no_thread_change(_):
        raise AssertionError('the loss changed torch\'s thread count')

    # Chunks run one after the other: the process-wide setting is not
    # touched, not even temporarily.
    monkeypatch.setattr(torch, 'set_num_threads', no_thread_change)
    leaf_S = maps_S.clone().requires_grad_()
    leaf_T = maps_T.clone().requires_grad_(teacher_grad)
    value = structural_similarity_loss(leaf_S, leaf_T)
    value.backward()
    ref_S = maps_S.clone().requires_grad_()
    ref_T = maps_T.clone().requires_grad_(teacher_grad)
    ref = naive_level_loss(ref_S, ref_T)
    ref.backward()
    assert value.item() == pytest.approx(ref.item(), rel=1e-10)
    torch.testing.assert_close(leaf_S.grad, ref_S.grad, rtol=1e-7,
                               atol=1e-12)
    assert torch.get_num_threads() == threads
    if teacher_grad:
        torch.testing.assert_close(leaf_T.grad, ref_T.grad, rtol=1e-7,
                                   atol=1e-12)


def test_mean_ssim_equals_mean_of_ssim_map_and_its_autograd():
    maps_S, maps_T = random_maps((2, 3, 14, 19), seed=12)
    x, y = min_max_rescale(maps_S), min_max_rescale(maps_T)
    leaf_fast = x.clone().requires_grad_()
    leaf_map = x.clone().requires_grad_()
    fast = mean_ssim(leaf_fast, y, window_size=7, sigma=1.0)
    by_map = ssim_map(leaf_map, y, window_size=7, sigma=1.0).mean()
    fast.backward()
    by_map.backward()
    assert fast.item() == pytest.approx(by_map.item(), rel=1e-12)
    torch.testing.assert_close(leaf_fast.grad, leaf_map.grad)
    with torch.no_grad():
        no_grad_value = mean_ssim(leaf_fast, y, window_size=7, sigma=1.0)
    assert no_grad_value.grad_fn is None
    assert no_grad_value.item() == pytest.approx(fast.item(), rel=1e-12)
    with pytest.raises(RuntimeError):
        # The gradient is precomputed: no double backward.
        leaf = x.clone().requires_grad_()
        grad, = torch.autograd.grad(mean_ssim(leaf, y), leaf,
                                    create_graph=True)
        grad.sum().backward()


def test_ssim_map_shape_and_range():
    maps_S, maps_T = random_maps((2, 3, 19, 25))
    x, y = min_max_rescale(maps_S), min_max_rescale(maps_T)
    ssim = ssim_map(x, y)
    assert ssim.shape == (2, 3, 9, 15)
    assert ssim.max() <= 1 + 1e-12 and ssim.min() >= -1 - 1e-12
    torch.testing.assert_close(ssim, naive_ssim_map(x, y, 11, 1.5))


def test_identical_inputs_give_zero_and_different_do_not():
    maps_S, maps_T = random_maps((2, 4, 13, 17), dtype=torch.float32)
    assert structural_similarity_loss(
        maps_T.clone(), maps_T).item() == pytest.approx(0, abs=1e-6)
    levels = [maps_T, maps_T[..., :7, :9], maps_T[..., :1, :1]]
    assert structural_similarity_loss(
        levels, [lv.clone() for lv in levels]).item() == pytest.approx(
            0, abs=1e-6)
    assert structural_similarity_loss(maps_S, maps_T).item() > 0.1


def test_sample_rescaling_makes_it_invariant_to_affine_maps():
    maps_S, maps_T = random_maps((2, 3, 15, 13))
    base = structural_similarity_loss(maps_S, maps_T)
    moved = structural_similarity_loss(5 * maps_S - 7, 0.1 * maps_T + 3)
    assert moved.item() == pytest.approx(base.item(), rel=1e-9)
    # Without rescaling the value changes.
    raw = structural_similarity_loss(maps_S.sigmoid(), maps_T.sigmoid(),
                                     normalize='none')
    raw_moved = structural_similarity_loss(
        (maps_S.sigmoid() + 1) / 2, maps_T.sigmoid(), normalize='none')
    assert abs(raw.item() - raw_moved.item()) > 1e-3


def test_min_max_rescale_modes_and_constant_map():
    maps_S, _ = random_maps((2, 3, 5, 7))
    per_sample = min_max_rescale(maps_S, 'sample')
    assert per_sample.amin(dim=(1, 2, 3)).tolist() == [0, 0]
    torch.testing.assert_close(per_sample.amax(dim=(1, 2, 3)),
                               torch.ones(2, dtype=torch.float64))
    per_channel = min_max_rescale(maps_S, 'channel')
    torch.testing.assert_close(per_channel.amax(dim=(2, 3)),
                               torch.ones(2, 3, dtype=torch.float64))
    assert min_max_rescale(maps_S, 'none') is maps_S
    constant = torch.full((1, 2, 9, 9), 4.0, requires_grad=True)
    assert min_max_rescale(constant).abs().max() == 0
    value = structural_similarity_loss(constant, torch.rand(1, 2, 9, 9))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(constant.grad).all()


# ------------------------------------------------------------ FPN levels ---
def test_fpn_levels_are_summed_with_level_weights():
    shapes = [(2, 3, 27, 35), (2, 3, 14, 18), (2, 3, 7, 9)]
    pairs = [random_maps(s, seed=i) for i, s in enumerate(shapes)]
    levels_S = [p[0] for p in pairs]
    levels_T = [p[1] for p in pairs]
    weights = [1.0, 0.5, 2.0]
    value = structural_similarity_loss(levels_S, levels_T,
                                       level_weights=weights)
    ref = sum(w * naive_level_loss(s, t)
              for w, s, t in zip(weights, levels_S, levels_T))
    assert value.item() == pytest.approx(ref.item(), rel=1e-10)
    module = StructuralSimilarityLoss(level_weights=weights, loss_weight=3.)
    assert module(tuple(levels_S), tuple(levels_T)).item() == \
        pytest.approx(3 * ref.item(), rel=1e-10)


@pytest.mark.parametrize('height, width, window', [(7, 11, 7), (5, 5, 5),
                                                   (3, 3, 3), (2, 4, 1),
                                                   (1, 1, 1)])
def test_small_levels_use_the_documented_window(height, width, window):
    maps_S, maps_T = random_maps((2, 6, height, width), seed=height * width)
    leaf = maps_S.clone().requires_grad_()
    value = structural_similarity_loss(leaf, maps_T)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(leaf.grad).all()
    rescaled_S, rescaled_T = min_max_rescale(maps_S), min_max_rescale(maps_T)
    assert ssim_map(rescaled_S, rescaled_T).shape[-2:] == (
        height - window + 1, width - window + 1)
    # Truncated Gaussian, sigma kept at 1.5 (not shrunk with the window).
    ref = 1 - naive_ssim_map(rescaled_S, rescaled_T, window, 1.5).mean()
    assert value.item() == pytest.approx(ref.item(), rel=1e-10)
    if window >= 3:
        shrunk = 1 - naive_ssim_map(rescaled_S, rescaled_T, window,
                                    1.5 * window / 11).mean()
        assert abs(value.item() - shrunk.item()) > 1e-6


def test_one_by_one_level_is_the_luminance_term():
    maps_S, maps_T = random_maps((3, 5, 1, 1), seed=4)
    x, y = min_max_rescale(maps_S), min_max_rescale(maps_T)
    luminance = (2 * x * y + C1) / (x**2 + y**2 + C1)
    assert structural_similarity_loss(maps_S, maps_T).item() == \
        pytest.approx(1 - luminance.mean().item(), rel=1e-10)


# -------------------------------------------------- third-party references ---
@pytest.mark.parametrize('shape', [(2, 3, 23, 37), (1, 5, 17, 29),
                                   (2, 4, 7, 11)])
def test_matches_pytorch_msssim(shape):
    pytorch_msssim = pytest.importorskip('pytorch_msssim')
    maps_S, maps_T = random_maps(shape, seed=7, dtype=torch.float32)
    x, y = min_max_rescale(maps_S), min_max_rescale(maps_T)
    # On a 7 x 11 level our window is 7 wide: ask pytorch_msssim for the
    # same truncated Gaussian (sigma 1.5) to check the small-level rule.
    size = fitted_window_size(shape[-2], shape[-1], 11)
    ref = pytorch_msssim.ssim(x, y, data_range=1, win_size=size,
                              win_sigma=1.5, K=(0.01, 0.03))
    value = structural_similarity_loss(maps_S, maps_T)
    assert value.item() == pytest.approx(1 - ref.item(), rel=1e-5, abs=1e-6)


def test_matches_kornia_with_valid_padding():
    # kornia pads ('same', reflect) by default, which changes the statistics
    # near the border; only its padding='valid' mode (the 'same' map cropped
    # to the positions the window fully covers) computes our definition. Its
    # kernel is the same normalised Gaussian with sigma fixed at 1.5 and the
    # same C1, C2; it adds eps to the denominator (0 here) and ssim_loss
    # returns the mean of clamp((1 - SSIM) / 2, 0, 1), i.e. half our loss.
    kornia = pytest.importorskip('kornia')
    if 'padding' not in inspect.signature(kornia.metrics.ssim).parameters:
        pytest.skip(f'kornia {kornia.__version__} has no padding="valid" '
                    'SSIM; its padded SSIM is a different definition')
    maps_S, maps_T = random_maps((2, 3, 23, 37), seed=8, dtype=torch.float32)
    x, y = min_max_rescale(maps_S), min_max_rescale(maps_T)
    kornia_map = kornia.metrics.ssim(x, y, 11, max_val=1.0, eps=0.0,
                                     padding='valid')
    ours = ssim_map(x, y)
    assert kornia_map.shape == ours.shape
    torch.testing.assert_close(ours, kornia_map, rtol=1e-4, atol=1e-5)
    kornia_loss = kornia.losses.ssim_loss(x, y, 11, max_val=1.0, eps=0.0,
                                          padding='valid')
    value = structural_similarity_loss(maps_S, maps_T)
    assert value.item() == pytest.approx(2 * kornia_loss.item(), rel=1e-5)


# ------------------------------------------------------- precision, misc ---
def test_half_precision_under_autocast_keeps_float32_math():
    maps_S, maps_T = random_maps((2, 4, 13, 15), seed=5, dtype=torch.float32)
    half_S = maps_S.to(torch.bfloat16).requires_grad_()
    half_T = maps_T.to(torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = structural_similarity_loss(half_S, half_T)
    value.backward()
    ref = naive_level_loss(half_S.double(), half_T.double())
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(ref.item(), rel=1e-5)
    assert half_S.grad.dtype == torch.bfloat16


def test_teacher_gets_no_gradient_and_student_grad_is_branch_free():
    maps_S, maps_T = random_maps((1, 3, 12, 14), dtype=torch.float32)
    only_S = maps_S.clone().requires_grad_()
    structural_similarity_loss(only_S, maps_T).backward()
    both_S = maps_S.clone().requires_grad_()
    both_T = maps_T.clone().requires_grad_()
    structural_similarity_loss(both_S, both_T).backward()
    assert maps_T.grad is None
    torch.testing.assert_close(only_S.grad, both_S.grad)


def test_registry_build_and_loss_weight():
    loss = MODELS.build(dict(type='mmstructkd.StructuralSimilarityLoss'))
    assert isinstance(loss, StructuralSimilarityLoss)
    weighted = MODELS.build(
        dict(type='mmstructkd.StructuralSimilarityLoss', loss_weight=2.5,
             normalize='channel'))
    maps_S, maps_T = random_maps((2, 3, 13, 11))
    assert weighted(maps_S, maps_T).item() == pytest.approx(
        2.5 * structural_similarity_loss(
            maps_S, maps_T, normalize='channel').item())


# ---------------------------------------------------------------- errors ---
def test_channel_mismatch_names_shapes_and_suggests_a_connector():
    with pytest.raises(ValueError) as err:
        structural_similarity_loss(
            torch.rand(2, 128, 13, 21), torch.rand(2, 256, 13, 21))
    message = str(err.value)
    assert LOSS_NAME in message and 'channel counts' in message
    assert '(2, 128, 13, 21)' in message and '(2, 256, 13, 21)' in message
    assert 'ConvModuleConnector' in message and 'connectors' in message


@pytest.mark.parametrize('kwargs, pattern', [
    (dict(preds_S=torch.rand(2, 3, 9, 9), preds_T=torch.rand(2, 3, 9, 11)),
     'batch or spatial sizes differ'),
    (dict(preds_S=torch.rand(3, 9, 9), preds_T=torch.rand(3, 9, 9)),
     'preds_S must be a 4-D tensor'),
    (dict(preds_S=[torch.rand(1, 2, 9, 9)] * 2,
          preds_T=[torch.rand(1, 2, 9, 9)]), 'feature levels'),
    (dict(preds_S=[torch.rand(1, 2, 9, 9)] * 2,
          preds_T=[torch.rand(1, 2, 9, 9)] * 2, level_weights=[1.0]),
     'level_weights has 1 entries'),
    (dict(preds_S=torch.rand(1, 2, 9, 9), preds_T=torch.rand(1, 2, 9, 9),
          normalize='batch'), 'normalize must be one of'),
    (dict(preds_S=torch.rand(1, 2, 9, 9), preds_T=torch.rand(1, 2, 9, 9),
          window_size=10), 'window_size must be an odd'),
])
def test_bad_input_raises_clear_error(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern) as err:
        structural_similarity_loss(**kwargs)
    assert LOSS_NAME in str(err.value)


def test_module_rejects_bad_settings_at_build_time():
    with pytest.raises(ValueError, match='sigma must be positive'):
        StructuralSimilarityLoss(sigma=0)
    with pytest.raises(ValueError, match='normalize must be one of'):
        StructuralSimilarityLoss(normalize='global')


@pytest.mark.parametrize('size', [1, 3, 11])
def test_adjoint_blur_is_the_transpose_of_the_blur(size):
    # <blur(x), y> = <x, blur^T(y)>: the adjoint (a padded convolution, or
    # the identity for a 1-wide window) is the blur's exact transpose.
    from mmstructkd.models.losses.ssim_window import blur
    generator = torch.Generator().manual_seed(size)
    window = gaussian_window_1d(size, 1.5, dtype=torch.float64)
    x = torch.randn(2, 3, 13, 17, generator=generator, dtype=torch.float64)
    blurred = blur(x, window)
    assert blurred.shape == (2, 3, 14 - size, 18 - size)
    y = torch.randn(blurred.shape, generator=generator, dtype=torch.float64)
    back = blur(y, window, adjoint=True)
    assert back.shape == x.shape
    torch.testing.assert_close((blurred * y).sum(), (x * back).sum())
    if size == 1:
        torch.testing.assert_close(blurred, x)
