"""Runner-written checkpoints load under weights-only unpickling; arbitrary
globals are still refused."""
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint
from torch import nn

import mmstructkd  # noqa: F401  (applies the allow-list)


def _mmengine_like_checkpoint(path):
    """A checkpoint shaped like the ones mmengine's Runner writes."""
    hub = MessageHub.get_instance('test_safe_ckpt')
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_scalar('train/lr', 0.01)
    hub.update_info('iter', 3)
    buffer = HistoryBuffer()
    empty_buffer = HistoryBuffer()
    buffer.update(1.5, count=2)
    buffer.update(np.float64(2.5))
    model = nn.Conv2d(3, 4, 3)
    checkpoint = dict(
        meta=dict(
            epoch=0, iter=3, seed=np.int64(7), cfg='model = dict()',
            dataset_meta=dict(classes=('a', 'b'), palette=[[1, 2, 3]]),
            hist=buffer, empty_hist=empty_buffer, arr=np.arange(5, dtype=np.int64),
            scalar32=np.float32(0.25)),
        state_dict=model.state_dict(),
        message_hub=hub.state_dict(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1).state_dict())
    torch.save(checkpoint, path)
    return model


def test_mmengine_checkpoint_loads_weights_only(tmp_path):
    path = str(tmp_path / 'iter_3.pth')
    model = _mmengine_like_checkpoint(path)
    # torch's own weights-only load (what mmengine calls) succeeds...
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    assert ckpt['meta']['iter'] == 3
    assert isinstance(ckpt['meta']['hist'], HistoryBuffer)
    np.testing.assert_array_equal(ckpt['meta']['arr'], np.arange(5))
    # ...and so does mmengine's loader, into a model.
    fresh = nn.Conv2d(3, 4, 3)
    load_checkpoint(fresh, path, map_location='cpu')
    for a, b in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(a, b)
    hub = MessageHub.get_instance('restored')
    hub.load_state_dict(ckpt['message_hub'])
    assert hub.get_scalar('train/loss').current() == pytest.approx(0.5)


class _Exploit:

    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null',))


def test_arbitrary_global_is_refused(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'payload': _Exploit()}, path)
    with pytest.raises(pickle.UnpicklingError, match='system'):
        torch.load(path, map_location='cpu')
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(path, map_location='cpu')


class _GetattrExploit:
    """A pickle that reaches os.system through getattr on an allowed
    class (HistoryBuffer's module globals)."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


def test_getattr_is_restricted(tmp_path):
    path = str(tmp_path / 'evil_getattr.pth')
    torch.save({'payload': _GetattrExploit()}, path)
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        torch.load(path, map_location='cpu')
    big = str(tmp_path / 'big_bytes.pth')

    class _Alloc:

        def __reduce__(self):
            return (bytes, (10**12, ))

    torch.save({'payload': _Alloc()}, big)
    with pytest.raises(pickle.UnpicklingError, match='refusing bytes'):
        torch.load(big, map_location='cpu')


def test_weights_only_default_untouched():
    # The fix must not turn weights-only loading off globally.
    assert os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD') in (None, '0')
    assert os.environ.get('TORCH_FORCE_WEIGHTS_ONLY_LOAD') in (None, '0', '1')
    import inspect
    default = inspect.signature(torch.load).parameters['weights_only'].default
    # None means "use the default", which is True on torch >= 2.6.
    assert default in (None, True)
