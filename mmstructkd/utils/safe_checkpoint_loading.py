"""Let mmengine load its own checkpoints under weights-only unpickling.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``. mmengine
0.10.7 calls ``torch.load`` without the argument, and the checkpoints its
Runner writes hold a few non-tensor objects (the message hub's
``HistoryBuffer`` and the numpy arrays and scalars inside it), so ``--resume``,
``load_from`` and a local ``teacher_ckpt`` fail with ``UnpicklingError``.

The fix keeps the weights-only unpickler (the security boundary against
malicious pickles) and allow-lists exactly those types with
``torch.serialization.add_safe_globals``. Anything else a pickle asks for,
e.g. ``os.system``, is still refused.
"""
import pickle
from typing import List

import numpy as np
import torch

from .mmengine_private import history_buffer_statistics


def mmengine_checkpoint_globals() -> List[object]:
    """The non-tensor types that Runner-written checkpoints contain."""
    from mmengine.logging import HistoryBuffer

    # numpy arrays pickle through ``_reconstruct`` with their dtype; numpy
    # scalars (e.g. a float64 loss value) through ``scalar``. The module was
    # renamed ``numpy._core`` in numpy 2; pickles name whichever wrote them.
    allowed = [HistoryBuffer, np.ndarray, np.dtype]
    for module_name in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        try:
            module = __import__(module_name, fromlist=['_reconstruct'])
        except ImportError:
            continue
        allowed += [module._reconstruct, module.scalar]
    # The concrete dtype classes (Float64DType, Int64DType, ...).
    allowed += sorted({type(np.dtype(code)) for code in np.typecodes['All']
                       if code not in ('M', 'm')} |
                      {type(np.dtype('datetime64[s]')),
                       type(np.dtype('timedelta64[s]'))},
                      key=lambda t: t.__name__)
    return _unique(allowed)


def _history_buffer_getattr(obj, name):
    """``getattr`` restricted to what a pickled ``HistoryBuffer`` needs.

    A ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')`` and so on. Allow-listing the real
    ``getattr`` would let a pickle reach any attribute of any allowed
    object; this one resolves only those methods and refuses the rest.
    """
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and isinstance(name, str) and \
            name in history_buffer_statistics():
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}) while loading a checkpoint: '
        f'only HistoryBuffer statistics methods are allowed.')


def _empty_or_copied_bytes(*args):
    """``bytes`` restricted to ``bytes()`` and ``bytes(b'...')``.

    numpy pickles the data of an empty array as ``bytes()``; an integer
    argument (a huge allocation) is refused.
    """
    if not args or (len(args) == 1 and isinstance(args[0],
                                                  (bytes, bytearray))):
        return bytes(*args)
    raise pickle.UnpicklingError(
        'refusing bytes(...) with non-bytes arguments while loading a '
        'checkpoint.')


def _unique(items):
    seen, out = set(), []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out


def allow_mmengine_checkpoints() -> None:
    """Allow-list mmengine's checkpoint types for weights-only loading.

    Idempotent: torch keeps a set of safe globals.
    """
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(
            mmengine_checkpoint_globals() +
            [(_history_buffer_getattr, 'builtins.getattr'),
             (_empty_or_copied_bytes, 'builtins.bytes')])


allow_mmengine_checkpoints()
