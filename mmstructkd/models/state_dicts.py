"""State dicts as checkpoints hold them.

One home for reading the weights out of a checkpoint dict, used by the
teacher loading and by the tools that load a distillation checkpoint.
"""
import re
from collections import OrderedDict
from typing import Mapping

# The prefix (Distributed)DataParallel puts before the wrapped model's keys.
DDP_PREFIX = 'module.'


def strip_ddp_prefix(state_dict: Mapping) -> 'OrderedDict[str, object]':
    """``state_dict`` with a leading ``module.`` (a DDP-wrapped model's
    keys) removed from every key, as mmengine's checkpoint loader does; the
    ``_metadata`` (module versions) of a torch state dict follows."""
    metadata = getattr(state_dict, '_metadata', None)
    revised = OrderedDict(
        (re.sub(r'^module\.', '', k), v) for k, v in state_dict.items())
    if metadata is not None:
        # The wrapped model's own entry is 'module' itself, without a dot.
        revised._metadata = OrderedDict(
            (re.sub(r'^module\.?', '', k), v) for k, v in metadata.items())
    return revised


def checkpoint_state_dict(checkpoint: Mapping) -> 'OrderedDict[str, object]':
    """The state dict of a checkpoint: under ``state_dict`` if there is one
    (else the checkpoint itself), with the ``module.`` prefix of a
    DDP-wrapped model removed (:func:`strip_ddp_prefix`)."""
    return strip_ddp_prefix(checkpoint.get('state_dict', checkpoint))
