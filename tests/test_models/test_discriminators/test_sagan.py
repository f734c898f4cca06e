"""Tests of the SAGAN-style critic of SKD's holistic distillation."""
import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from mmstructkd.models.discriminators.sagan import (SAGANDiscriminator,
                                                    SelfAttention2d)
from mmstructkd.registry import MODELS


def small_discriminator(**kwargs) -> SAGANDiscriminator:
    # 8 -> 16 -> 32 -> 64 channels: same structure, fast on CPU.
    cfg = dict(num_classes=5, base_channels=8)
    cfg.update(kwargs)
    return SAGANDiscriminator(**cfg)


def strided_convs(D: SAGANDiscriminator):
    return [stage[0] for stage in D.stages]


def largest_singular_value(weight: torch.Tensor) -> float:
    return torch.linalg.matrix_norm(
        weight.detach().flatten(1).double(), ord=2).item()


def test_structure_of_official_discriminator():
    D = SAGANDiscriminator(num_classes=19)
    convs = strided_convs(D)
    assert [c.out_channels for c in convs] == [64, 128, 256, 512]
    assert convs[0].in_channels == 19
    for stage, conv in zip(D.stages, convs):
        assert isinstance(conv, nn.Conv2d)
        assert conv.kernel_size == (4, 4)
        assert conv.stride == (2, 2)
        assert conv.padding == (1, 1)
        assert isinstance(stage[1], nn.LeakyReLU)
        assert stage[1].negative_slope == 0.1
    assert D.head.out_channels == 1 and D.head.kernel_size == (4, 4)


def test_spectral_norm_on_every_strided_conv():
    D = SAGANDiscriminator(num_classes=19)
    for conv in strided_convs(D):
        assert parametrize.is_parametrized(conv, 'weight')
        kinds = [type(p).__name__ for p in conv.parametrizations.weight]
        assert kinds == ['_SpectralNorm']


def test_spectral_norm_constrains_largest_singular_value():
    torch.manual_seed(0)
    D = small_discriminator()
    with torch.no_grad():
        for conv in strided_convs(D):
            original = conv.parametrizations.weight.original
            # New weights with a clear top singular direction, far from 1
            # and unknown to the stored power-iteration vectors.
            a = torch.randn(original.shape[0], 1)
            b = torch.randn(1, original[0].numel())
            w = 0.05 * torch.randn_like(original) + \
                (3 * a @ b).view_as(original)
            original.copy_(w)
            assert largest_singular_value(original) > 10
    D.train()
    for _ in range(5):  # one power iteration per forward pass
        D(torch.randn(2, 5, 16, 16))
    for conv in strided_convs(D):
        assert largest_singular_value(conv.weight) == pytest.approx(
            1, abs=1e-3)
    D.eval()
    for conv in strided_convs(D):
        assert largest_singular_value(conv.weight) == pytest.approx(
            1, abs=1e-3)


def test_attention_after_256_and_512_stage():
    D = SAGANDiscriminator(num_classes=19)
    has_attention = [isinstance(s[-1], SelfAttention2d) for s in D.stages]
    assert has_attention == [False, False, True, True]
    assert D.stages[2][-1].channels == 256
    assert D.stages[3][-1].channels == 512
    for i in (2, 3):
        attention = D.stages[i][-1]
        assert attention.query.out_channels == attention.channels // 8
        assert attention.key.out_channels == attention.channels // 8
        assert attention.value.out_channels == attention.channels
        assert attention.gamma.item() == 0
    other = small_discriminator(attention_after=(0, ))
    assert [isinstance(s[-1], SelfAttention2d)
            for s in other.stages] == [True, False, False, False]


def test_self_attention_matches_naive():
    torch.manual_seed(1)
    block = SelfAttention2d(16).double()
    with torch.no_grad():
        block.gamma.fill_(0.7)
    x = torch.randn(2, 16, 3, 5, dtype=torch.float64)
    q = block.query(x).flatten(2)
    k = block.key(x).flatten(2)
    v = block.value(x).flatten(2)
    num_positions = 15
    expected = torch.empty(2, 16, num_positions, dtype=torch.float64)
    for n in range(2):
        for i in range(num_positions):
            energy = torch.stack(
                [(q[n, :, i] * k[n, :, j]).sum()
                 for j in range(num_positions)])
            weights = torch.exp(energy) / torch.exp(energy).sum()
            expected[n, :, i] = sum(v[n, :, j] * weights[j]
                                    for j in range(num_positions))
    expected = x + 0.7 * expected.view(2, 16, 3, 5)
    torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize('size', [(8, 8), (13, 17), (65, 65), (1, 1),
                                  (2, 3), (1, 40)])
@pytest.mark.parametrize('mode', ['logits', 'softmax_image'])
def test_scores_per_image_for_odd_and_small_sizes(mode, size):
    torch.manual_seed(2)
    D = small_discriminator(input_mode=mode)
    logits = torch.randn(3, 5, *size, requires_grad=True)
    image = torch.randn(3, 3, 8 * size[0] + 1, 8 * size[1] + 3)
    scores = D(logits, image if mode == 'softmax_image' else None)
    assert scores.shape == (3, )
    assert torch.isfinite(scores).all()
    scores.sum().backward()
    assert logits.grad.abs().sum() > 0


def test_default_channels_on_official_crop():
    D = SAGANDiscriminator(num_classes=19)
    assert D(torch.randn(2, 19, 65, 65)).shape == (2, )


def _features_before_head(D, x):
    for stage in D.stages:
        x = stage(x)
    return x


def test_head_is_the_official_unpadded_conv_on_large_maps():
    torch.manual_seed(3)
    D = small_discriminator().eval()
    for size, final in [((65, 65), (4, 4)), ((128, 96), (8, 6))]:
        x = torch.randn(2, 5, *size)
        features = _features_before_head(D, x)
        assert features.shape[-2:] == final
        expected = D.head(features).mean(dim=(1, 2, 3))
        torch.testing.assert_close(D(x), expected)
    # Smaller maps are zero-padded (centred) to the head's 4x4 window.
    x = torch.randn(2, 5, 24, 40)
    features = _features_before_head(D, x)
    assert features.shape[-2:] == (1, 2)
    expected = D.head(F.pad(features, (1, 1, 1, 2))).mean(dim=(1, 2, 3))
    torch.testing.assert_close(D(x), expected)


def test_softmax_image_input_is_softmax_and_resized_image():
    torch.manual_seed(4)
    D = small_discriminator(input_mode='softmax_image')
    assert D.in_channels == 8 and D.num_classes == 5
    logits = torch.randn(2, 5, 13, 17)
    image = torch.randn(2, 3, 101, 135)
    built = D.build_input(logits, image)
    expected = torch.cat([
        logits.softmax(dim=1),
        F.interpolate(image, size=(13, 17), mode='bilinear',
                      align_corners=False)
    ], 1)
    torch.testing.assert_close(built, expected)
    torch.testing.assert_close(D(logits, image), D.score_input(expected))
    # logits mode feeds the logits unchanged and ignores an image.
    D_logits = small_discriminator()
    assert D_logits.build_input(logits, image) is logits


def test_channels_from_in_channels_or_num_classes():
    assert small_discriminator(
        input_mode='softmax_image').in_channels == 8
    D = SAGANDiscriminator(in_channels=22, input_mode='softmax_image')
    assert D.num_classes == 19
    D = SAGANDiscriminator(
        in_channels=20, num_classes=19, input_mode='softmax_image',
        image_channels=1)
    assert D.stages[0][0].in_channels == 20


def test_bad_channels_give_clear_errors():
    with pytest.raises(ValueError, match='expected in_channels=22'):
        SAGANDiscriminator(
            in_channels=19, num_classes=19, input_mode='softmax_image')
    with pytest.raises(ValueError, match='leaves -1 channels'):
        SAGANDiscriminator(in_channels=2, input_mode='softmax_image')
    with pytest.raises(ValueError, match='give in_channels or num_classes'):
        SAGANDiscriminator()
    D = SAGANDiscriminator(num_classes=19)
    with pytest.raises(ValueError,
                       match='expected seg_logits with 19 channels'):
        D(torch.randn(2, 21, 8, 8))
    with pytest.raises(ValueError, match=r'must be \(N, K, H, W\)'):
        D(torch.randn(19, 8, 8))
    D = small_discriminator(input_mode='softmax_image')
    with pytest.raises(ValueError, match='needs the image'):
        D(torch.randn(2, 5, 8, 8))
    with pytest.raises(ValueError, match=r'image must be \(N, 3, H, W\)'):
        D(torch.randn(2, 5, 8, 8), torch.randn(2, 1, 64, 64))
    with pytest.raises(ValueError, match='critic input must be'):
        D.score_input(torch.randn(2, 5, 8, 8))


def test_bad_settings_give_clear_errors():
    with pytest.raises(ValueError, match='input_mode must be one of'):
        small_discriminator(input_mode='softmax')
    with pytest.raises(ValueError, match='stages are numbered 0 to 3'):
        small_discriminator(attention_after=(4, ))
    with pytest.raises(ValueError, match='too small for reduction=8'):
        small_discriminator(base_channels=1)
    with pytest.raises(ValueError, match='input_norm must be one of'):
        small_discriminator(input_norm='ln')


@pytest.mark.parametrize('input_norm', ['batchnorm', 'tanh'])
def test_optional_input_norm(input_norm):
    D = small_discriminator(input_norm=input_norm)
    expected = nn.BatchNorm2d if input_norm == 'batchnorm' else nn.Tanh
    assert isinstance(D.input_norm, expected)
    assert D(torch.randn(2, 5, 13, 17)).shape == (2, )


def test_state_dict_round_trip_gives_identical_outputs():
    torch.manual_seed(5)
    D = small_discriminator()
    with torch.no_grad():
        for stage in D.stages[2:]:
            stage[-1].gamma.fill_(0.3)
    D.train()
    for _ in range(3):  # moves the spectral-norm vectors off their init
        D(torch.randn(2, 5, 13, 17))
    buffer = io.BytesIO()
    torch.save(D.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    torch.manual_seed(6)
    fresh = small_discriminator()
    x = torch.randn(2, 5, 13, 17)
    D.eval()
    fresh.eval()
    assert not torch.allclose(fresh(x), D(x))
    fresh.load_state_dict(state)
    assert torch.equal(fresh(x), D(x))


def test_deepcopy_after_training_forward():
    torch.manual_seed(7)
    D = small_discriminator().train()
    D(torch.randn(2, 5, 9, 9))
    twin = copy.deepcopy(D)
    x = torch.randn(2, 5, 9, 9)
    assert torch.equal(twin.eval()(x), D.eval()(x))


def test_built_from_registry():
    D = MODELS.build(
        dict(type='SAGANDiscriminator', num_classes=5, base_channels=8))
    assert isinstance(D, SAGANDiscriminator)
