"""NonFiniteGuard and the fused finiteness check, on plain torch modules.

The guard's real use, inside SingleTeacherDistill's training step and
through a training run, is tested in
tests/test_models/test_algorithms/test_nonfinite_train_step.py and
tests/test_engine/test_nonfinite_training.py.
"""
import pytest
import torch
from torch import nn

from mmstructkd.models.utils import (BufferSnapshot, NonFiniteGuard,
                                     NonFiniteStateError, named_state,
                                     nonfinite_tensors, nonfinite_terms)

NAN, INF = float('nan'), float('inf')


def test_nonfinite_terms_names_offenders():
    losses = dict(
        loss_d_real=torch.tensor(1.0),
        loss_gp=torch.tensor([1.0, INF]),
        levels=[torch.tensor(1.0), torch.tensor([[NAN]])],
        accuracy=torch.tensor(3),
        grad_norm=NAN,
        finite_number=2.5,
        note='ignored')
    assert nonfinite_terms(losses) == ['loss_gp', 'levels[1]', 'grad_norm']
    assert nonfinite_terms(dict(a=torch.ones(2), b=1.0)) == []


def test_nonfinite_tensors_is_exact_for_every_dtype():
    big = torch.full((1000, ), 3e38)  # finite, but its sum of squares is not
    named = [
        ('nan', torch.tensor([1.0, NAN])),
        ('huge', big),
        ('half_inf', torch.tensor([INF], dtype=torch.float16)),
        ('half_max', torch.full((4, ), 65504.0, dtype=torch.float16)),
        ('bf16_huge', torch.full((8, ), 1e38, dtype=torch.bfloat16)),
        ('double_neg_inf', torch.tensor([1.0, -INF], dtype=torch.float64)),
        ('double_huge', torch.tensor([1e300], dtype=torch.float64)),
        ('ints', torch.arange(3)),
        ('empty', torch.empty(0)),
        ('not a tensor', 3.0),
        ('param', nn.Parameter(torch.tensor([INF, 0.0]))),
    ]
    assert nonfinite_tensors(named) == [
        'nan', 'half_inf', 'double_neg_inf', 'param']
    assert nonfinite_tensors(named[1:2] + named[3:5]) == []


def test_buffer_snapshot_undoes_a_forward():
    bn = nn.BatchNorm1d(2)
    bn(torch.randn(4, 2))
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    snapshot = BufferSnapshot()
    snapshot.take(bn)
    bn(torch.tensor([[NAN, 1.0], [0.0, 2.0]]))
    assert nonfinite_tensors(bn.named_buffers()) == [
        'running_mean', 'running_var']
    assert int(bn.num_batches_tracked) == 2
    snapshot.restore(bn)
    for key, value in bn.state_dict().items():
        assert torch.equal(value, before[key]), key
    # Taken again after the module changed dtype: new copies, same result.
    bn.double()
    snapshot.take(bn)
    bn(torch.randn(4, 2, dtype=torch.float64))
    snapshot.restore(bn)
    assert torch.equal(bn.running_mean, before['running_mean'].double())


def test_guard_counts_and_resets_on_good_step():
    guard = NonFiniteGuard(max_consecutive=3)
    assert guard.check({'loss': torch.tensor(1.0)})
    assert not guard.check({'loss': torch.tensor(NAN)})
    assert (guard.num_checked, guard.num_skipped,
            guard.num_consecutive) == (2, 1, 1)
    assert not guard.check({'loss': torch.tensor(-INF)})
    assert guard.num_consecutive == 2
    assert guard.check({'loss': torch.tensor(0.5)})
    assert guard.state_dict() == dict(num_checked=4, num_skipped=2,
                                      num_consecutive=0)
    # Two more bad steps after the reset stay below the limit of 3.
    assert not guard.check({'loss': torch.tensor(NAN)})
    assert not guard.check({'loss': torch.tensor(NAN)})


def test_guard_raises_after_max_consecutive():
    guard = NonFiniteGuard(
        max_consecutive=3, name='discriminator step',
        option='model.max_nonfinite_steps')
    bad = dict(loss_d_real=torch.tensor(1.0), loss_gp=torch.tensor(NAN),
               loss_d_fake=torch.tensor(INF))
    assert not guard.check(bad)
    assert not guard.check(bad)
    with pytest.raises(RuntimeError) as info:
        guard.check(bad, step=4120)
    message = str(info.value)
    assert 'NonFiniteGuard(discriminator step)' in message
    assert 'loss_gp, loss_d_fake' in message and 'loss_d_real' not in message
    assert '3 steps in a row' in message
    assert 'iteration 4120' in message
    assert '`model.max_nonfinite_steps` (now 3)' in message


def test_guard_follows_the_agreed_verdict():
    """Another process saw a NaN: this one skips and counts too, and stops
    at the same step, although its own losses are finite."""
    guard = NonFiniteGuard(max_consecutive=2)
    others_bad = lambda ok: False  # noqa: E731
    assert not guard.check({'loss': torch.tensor(1.0)}, agree=others_bad)
    assert guard.state_dict() == dict(num_checked=1, num_skipped=1,
                                      num_consecutive=1)
    with pytest.raises(RuntimeError, match='losses of another process'):
        guard.check({'loss': torch.tensor(1.0)}, step=7, agree=others_bad)


def test_check_state_names_nonfinite_parameters_and_buffers():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    guard = NonFiniteGuard(max_consecutive=None, name='student step')
    guard.check_state(net, step=3)  # all finite: nothing happens
    with torch.no_grad():
        net[0].bias[1] = INF
        net[1].running_var[0] = NAN
    assert nonfinite_tensors(named_state(net)) == ['0.bias',
                                                    '1.running_var']
    # Whatever max_consecutive: a non-finite state cannot be trained on.
    with pytest.raises(NonFiniteStateError) as info:
        guard.check_state(net, step=3)
    message = str(info.value)
    assert 'NonFiniteGuard(student step)' in message
    assert 'iteration 3' in message
    assert '2 parameters/buffers are NaN or Inf: 0.bias, 1.running_var' \
        in message
    # Finite here, not on another process: stop all the same.
    fine = nn.Linear(2, 2)
    with pytest.raises(NonFiniteStateError, match='on another process'):
        guard.check_state(fine, agree=lambda ok: False)
    guard.check_state(fine, agree=lambda ok: ok)


def test_rollback_restores_the_buffers_of_a_skipped_step():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    net(torch.randn(4, 2))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    guard = NonFiniteGuard()
    guard.before_step(net)
    loss = net(torch.tensor([[NAN, 0.0], [1.0, 2.0]])).sum()
    assert not guard.check({'loss': loss})
    guard.rollback(net)
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_guard_state_dict_and_settings():
    guard = NonFiniteGuard(max_consecutive=3)
    guard.check({'loss': torch.tensor(NAN)})
    resumed = NonFiniteGuard(max_consecutive=3)
    resumed.load_state_dict(guard.state_dict())
    assert resumed.state_dict() == guard.state_dict() == dict(
        num_checked=1, num_skipped=1, num_consecutive=1)
    never = NonFiniteGuard(max_consecutive=None)
    for _ in range(50):
        assert not never.check({'loss': NAN})
    assert never.num_skipped == 50
    with pytest.raises(ValueError, match='max_consecutive must be >= 1'):
        NonFiniteGuard(max_consecutive=0)
    with pytest.raises(KeyError, match='num_consecutive'):
        NonFiniteGuard().load_state_dict(dict(num_checked=1, num_skipped=0))
