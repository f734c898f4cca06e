"""build_in_scope and unwrap_model: the one home of each."""
import torch
from torch import nn

import mmstructkd  # noqa: F401  (registers the losses)
from mmstructkd.models.utils import (NonFiniteGuard, build_in_scope,
                                     unwrap_model)


def test_build_in_scope_builds_unprefixed_types_and_passes_modules():
    loss = build_in_scope(dict(type='ChannelWiseDivergence', tau=2.0))
    assert type(loss).__name__ == 'ChannelWiseDivergence'
    module = nn.Linear(2, 2)
    assert build_in_scope(module) is module


def test_unwrap_model_returns_the_wrapped_model():
    model = nn.Linear(2, 2)
    assert unwrap_model(model) is model
    assert unwrap_model(nn.DataParallel(model)) is model


def test_update_or_skip_updates_or_rolls_back():
    bn = nn.BatchNorm1d(2)
    guard = NonFiniteGuard(max_consecutive=None)
    calls = []
    guard.before_step(bn)
    bn(torch.tensor([[float('nan'), 1.0], [0.0, 2.0]]))
    assert not guard.update_or_skip(
        bn, {'loss': torch.tensor(float('nan'))},
        lambda: calls.append('update'), lambda: calls.append('discard'))
    assert calls == ['discard']
    assert torch.isfinite(bn.running_mean).all()
    guard.before_step(bn)
    assert guard.update_or_skip(bn, {'loss': torch.tensor(1.0)},
                                lambda: calls.append('update'),
                                lambda: calls.append('discard'))
    assert calls == ['discard', 'update']
