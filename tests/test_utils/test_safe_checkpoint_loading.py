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


# Run in a fresh interpreter: importing mmstructkd there is the only thing
# that can change how a plain ``torch.load(path)`` treats an unsafe pickle.
_FRESH_LOAD = r"""
import os, pickle, sys
import torch
path, marker = sys.argv[1], sys.argv[2]
import mmstructkd  # noqa: F401  (what is checked: this import)
from mmengine.runner.checkpoint import CheckpointLoader
for load in (lambda: torch.load(path),
             lambda: torch.load(path, map_location='cpu'),
             lambda: CheckpointLoader.load_checkpoint(path,
                                                      map_location='cpu')):
    try:
        load()
    except pickle.UnpicklingError as err:
        assert 'system' in str(err), err
    else:
        sys.exit('LOADED: the unsafe pickle was unpickled')
    assert not os.path.exists(marker), 'os.system ran'
print('REFUSED')
# The payload is live: with weights-only explicitly off it runs.
torch.load(path, weights_only=False)
print('MARKER', os.path.exists(marker))
"""


class _MarkerExploit:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_import_keeps_weights_only_default(tmp_path):
    """Importing mmstructkd must not turn weights-only loading off: a plain
    ``torch.load(path)`` still refuses a pickle that runs ``os.system``,
    and the command never runs."""
    import subprocess
    import sys
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _MarkerExploit(str(marker))},
               str(path))
    assert not marker.exists()
    env = {k: v for k, v in os.environ.items()
           if k not in ('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD',
                        'TORCH_FORCE_WEIGHTS_ONLY_LOAD')}
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    env['PYTHONPATH'] = repo_root + os.pathsep + env.get('PYTHONPATH', '')
    proc = subprocess.run(
        [sys.executable, '-c', _FRESH_LOAD, str(path), str(marker)],
        env=env, cwd=str(tmp_path), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'REFUSED' in proc.stdout
    # The control: the same file does run its command when weights-only is
    # off, so the refusal above is what kept the marker away.
    assert 'MARKER True' in proc.stdout, proc.stdout[-2000:]
    assert marker.exists()
