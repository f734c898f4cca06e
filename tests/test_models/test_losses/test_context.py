"""Tests of the context (self-relation) distillation loss of BCD."""
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from mmstructkd.models.losses.context import (BLOCK_ELEMENTS, ContextLoss,
                                              block_rows, context_relation_kl,
                                              context_relation_kl_naive,
                                              relation_kl_rows,
                                              unit_positions)
from mmstructkd.registry import MODELS


def reference_context_kl(preds_S, preds_T, tau):
    """The formula, one image and one relation row at a time, in float64."""
    preds_S, preds_T = preds_S.double(), preds_T.double()
    num_images, _, height, width = preds_S.shape
    num_positions = height * width
    total = 0
    for n in range(num_images):
        x_S = preds_S[n].reshape(preds_S.shape[1], num_positions)
        x_T = preds_T[n].reshape(preds_T.shape[1], num_positions)
        u_S = x_S / x_S.norm(dim=0, keepdim=True)
        u_T = x_T / x_T.norm(dim=0, keepdim=True)
        for i in range(num_positions):
            sims_S = torch.einsum('c,cj->j', u_S[:, i], u_S) / tau
            sims_T = torch.einsum('c,cj->j', u_T[:, i], u_T) / tau
            p_T = torch.softmax(sims_T, dim=0)
            log_p_S = torch.log_softmax(sims_S, dim=0)
            total = total + (p_T * (p_T.log() - log_p_S)).sum()
    return total / (num_images * num_positions)


def make_pair(shape_S=(2, 5, 7, 9), channels_T=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    preds_S = torch.randn(*shape_S, generator=generator, dtype=torch.float64)
    preds_T = torch.randn(
        shape_S[0],
        channels_T,
        *shape_S[2:],
        generator=generator,
        dtype=torch.float64)
    return preds_S.requires_grad_(), preds_T


@pytest.fixture(scope='module')
def reference():
    """Reference value and student gradient of ``make_pair()``, tau 0.1."""
    preds_S, preds_T = make_pair()
    value = reference_context_kl(preds_S, preds_T, 0.1)
    (grad, ) = torch.autograd.grad(value, preds_S)
    return value.detach(), grad


def test_naive_matches_reference(reference):
    preds_S, preds_T = make_pair()
    value = context_relation_kl_naive(preds_S, preds_T, 0.1)
    assert value.item() > 1e-3
    torch.testing.assert_close(value, reference[0])
    # tau = 1 on a smaller map
    preds_S, preds_T = make_pair((2, 3, 4, 5), seed=1)
    torch.testing.assert_close(
        context_relation_kl_naive(preds_S, preds_T, 1.0),
        reference_context_kl(preds_S, preds_T, 1.0))


# M = 63 positions, N = 2: chunks of one row, chunks that do not divide M
# (8) and that do (9), exactly M, more than M (one image per block), two
# whole images per block, and more rows than the whole batch has.
@pytest.mark.parametrize('chunk_size', [1, 8, 9, 63, 64, 126, 1000])
def test_chunked_matches_reference_values_and_gradients(
        reference, chunk_size):
    preds_S, preds_T = make_pair()
    preds_T.requires_grad_()  # the loss must still leave it without grad
    expected, grad_expected = reference

    value = context_relation_kl(preds_S, preds_T, 0.1, chunk_size)
    value.backward()
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(preds_S.grad, grad_expected)
    assert preds_T.grad is None


def test_chunked_matches_naive_odd_sizes_three_images():
    preds_S, preds_T = make_pair((3, 6, 5, 11), channels_T=9, seed=3)
    naive = context_relation_kl_naive(preds_S, preds_T, 0.2)
    (grad_naive, ) = torch.autograd.grad(naive, preds_S)
    value = context_relation_kl(preds_S, preds_T, 0.2, chunk_size=20)
    (grad, ) = torch.autograd.grad(value, preds_S)
    torch.testing.assert_close(value, naive)
    torch.testing.assert_close(grad, grad_naive)


@pytest.mark.parametrize('chunk_size', [3, 7, 100])
def test_gradcheck_float64(chunk_size):
    # The hand-formed gradient (in the forward) against finite differences,
    # through the normalisation, with blocks of rows and of whole images.
    preds_S, preds_T = make_pair((2, 3, 4, 5), channels_T=4, seed=7)
    assert torch.autograd.gradcheck(
        lambda s: context_relation_kl(s, preds_T, 0.3, chunk_size),
        (preds_S, ))


def test_block_rows_bound_memory_and_respect_chunk_size():
    # Large maps: about BLOCK_ELEMENTS entries, in multiples of 64 rows.
    assert block_rows(8192, 4096) == BLOCK_ELEMENTS // 8192
    assert block_rows(32768, 4096) * 32768 <= BLOCK_ELEMENTS
    assert block_rows(30000, 4096) % 64 == 0
    # chunk_size is an upper bound; a block has at least one row.
    assert block_rows(8192, 100) == 100
    assert block_rows(10**8, 4096) == 1
    # Small maps: several whole images per block.
    assert block_rows(144, 4096) == 4096


def test_float32_value_and_gradient_match_float64():
    # Long float32 sums must not drift: M = 1024 positions, rows summed one
    # by one into a float64 total.
    preds_S, preds_T = make_pair((2, 16, 32, 32), channels_T=24, seed=9)
    expected = context_relation_kl_naive(preds_S, preds_T)
    (grad_expected, ) = torch.autograd.grad(expected, preds_S)
    single_S = preds_S.detach().float().requires_grad_()
    value = context_relation_kl(single_S, preds_T.float(), chunk_size=100)
    value.backward()
    torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=0)
    torch.testing.assert_close(single_S.grad.double(), grad_expected,
                               rtol=1e-4, atol=1e-9)


def test_no_grad_gives_the_value_only():
    preds_S, preds_T = make_pair()
    with torch.no_grad():
        value = context_relation_kl(preds_S, preds_T, chunk_size=10)
    assert not value.requires_grad
    torch.testing.assert_close(value,
                               context_relation_kl_naive(preds_S, preds_T))


def test_relation_kl_rows_blocks_make_up_the_loss(reference):
    # The per-row formula that the naive loss and the visualisation share:
    # any block of rows is a slice of all rows, whose mean is the loss.
    preds_S, preds_T = make_pair()
    unit_S, unit_T = unit_positions(preds_S, preds_T)
    assert unit_S.shape == (2, 63, 5) and unit_T.shape == (2, 63, 4)
    rows = relation_kl_rows(unit_S, unit_T, 0.1)
    assert rows.shape == (2, 63)
    block = relation_kl_rows(unit_S, unit_T, 0.1, images=slice(1, 2),
                             rows=slice(5, 17))
    torch.testing.assert_close(block, rows[1:2, 5:17])
    torch.testing.assert_close(rows.mean(), reference[0])
    torch.testing.assert_close(
        rows.mean(), context_relation_kl(preds_S, preds_T, 0.1, 9))


def test_float32_math_under_low_precision_inputs():
    preds_S, preds_T = make_pair()
    half_S, half_T = preds_S.detach().bfloat16(), preds_T.bfloat16()
    value = context_relation_kl(half_S, half_T, chunk_size=10)
    assert value.dtype == torch.float32
    expected = reference_context_kl(half_S.float(), half_T.float(), 0.1)
    torch.testing.assert_close(value.double(), expected, rtol=1e-4,
                               atol=1e-6)


def test_identical_features_give_zero():
    preds_S, _ = make_pair()
    preds_T = preds_S.detach().clone()
    assert context_relation_kl(preds_S, preds_T, chunk_size=10).abs() < 1e-12
    assert context_relation_kl_naive(preds_S, preds_T).abs() < 1e-12
    # Same directions at a different scale are the same relations.
    assert context_relation_kl(preds_S, 3 * preds_T).abs() < 1e-12


def test_invariant_to_teacher_channel_count():
    preds_S, preds_T = make_pair()
    padded_T = F.pad(preds_T, (0, 0, 0, 0, 0, 11))  # 4 -> 15 channels
    value = context_relation_kl(preds_S, preds_T, chunk_size=10)
    torch.testing.assert_close(
        context_relation_kl(preds_S, padded_T, chunk_size=10), value)
    padded_S = F.pad(preds_S.detach(), (0, 0, 0, 0, 0, 7))
    torch.testing.assert_close(
        context_relation_kl(padded_S, preds_T, chunk_size=10), value)


class LargestTensorRecorder(TorchDispatchMode):
    """Records the largest tensor any aten op produces (forward/backward)."""

    def __init__(self):
        super().__init__()
        self.largest = 0
        self.shape = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) \
                    and tensor.numel() > self.largest:
                self.largest, self.shape = tensor.numel(), tuple(tensor.shape)
        return out


def test_chunked_path_never_allocates_full_relation_matrix():
    # M = 99 > chunk_size; features (N * M * C = 594) are smaller than one
    # M x M matrix (9801), so anything of M x M size would be the relations.
    num_positions, chunk_size = 99, 40
    preds_S = torch.randn(2, 3, 9, 11, requires_grad=True)
    preds_T = torch.randn(2, 5, 9, 11)

    recorder = LargestTensorRecorder()
    with recorder:
        context_relation_kl_naive(preds_S, preds_T).backward()
    # The recorder sees the naive path's M x M matrices: the check can fail.
    assert recorder.largest >= num_positions**2

    for phase in ('forward', 'backward'):
        preds_S.grad = None
        recorder = LargestTensorRecorder()
        if phase == 'forward':
            with recorder:
                value = context_relation_kl(preds_S, preds_T, 0.1, chunk_size)
            value.backward()
        else:
            value = context_relation_kl(preds_S, preds_T, 0.1, chunk_size)
            with recorder:
                value.backward()
            assert preds_S.grad is not None
        assert recorder.largest <= max(chunk_size * num_positions,
                                       2 * 5 * num_positions), (
                                           phase, recorder.shape)


def test_module_build_weight_pool_and_levels():
    loss = MODELS.build(
        dict(type='ContextLoss', tau=0.2, chunk_size=16, loss_weight=3.0))
    assert isinstance(loss, ContextLoss)
    preds_S, preds_T = make_pair()
    torch.testing.assert_close(
        loss(preds_S, preds_T), 3.0 * context_relation_kl_naive(
            preds_S, preds_T, 0.2))

    # pool: maps of different sizes average-pooled to a common (h, w).
    pooled = ContextLoss(pool=(3, 4), chunk_size=5)
    big_S = torch.randn(2, 5, 13, 17, dtype=torch.float64)
    small_T = torch.randn(2, 6, 7, 9, dtype=torch.float64)
    expected = reference_context_kl(
        F.adaptive_avg_pool2d(big_S, (3, 4)),
        F.adaptive_avg_pool2d(small_T, (3, 4)), 0.1)
    torch.testing.assert_close(pooled(big_S, small_T), expected)
    assert ContextLoss(pool=3).pool == (3, 3)

    # A tuple of levels: weighted sum of the level losses.
    levels = ContextLoss(level_weights=[1.0, 0.5])
    other_S, other_T = make_pair((2, 3, 4, 5), seed=5)
    expected = (reference_context_kl(preds_S, preds_T, 0.1) +
                0.5 * reference_context_kl(other_S, other_T, 0.1))
    torch.testing.assert_close(
        levels((preds_S, other_S), (preds_T, other_T)), expected)


def test_errors():
    preds_S, preds_T = make_pair()
    with pytest.raises(ValueError, match=r'ContextLoss.*\(2, 5, 7, 9\).*'
                       r'\(2, 4, 7, 8\).*pool'):
        context_relation_kl(preds_S, preds_T[..., :8])
    with pytest.raises(ValueError, match='ContextLoss.*batch or spatial'):
        ContextLoss()(preds_S, preds_T[:1])
    with pytest.raises(ValueError, match='ContextLoss.*4-D'):
        context_relation_kl(preds_S[0], preds_T[0])
    with pytest.raises(ValueError, match='ContextLoss.*tau'):
        ContextLoss(tau=0)
    with pytest.raises(ValueError, match='ContextLoss.*chunk_size'):
        context_relation_kl(preds_S, preds_T, chunk_size=0)
    with pytest.raises(ValueError, match='ContextLoss.*pool'):
        ContextLoss(pool=(0, 4))
    with pytest.raises(ValueError, match='ContextLoss.*levels'):
        ContextLoss()((preds_S, preds_S), (preds_T, ))
