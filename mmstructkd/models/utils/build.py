"""Build the components that configs give for the distillation model."""
from typing import Union

from torch import nn

from mmstructkd.registry import MODELS


def build_in_scope(cfg: Union[dict, nn.Module]) -> nn.Module:
    """Build ``cfg`` from ``MODELS``, in mmstructkd's scope unless it names
    another with ``_scope_``; an already built module is returned as is.

    So ``type='ChannelWiseDivergence'`` needs no ``mmstructkd.`` prefix even
    when the Runner's default scope is a task package's (mmseg, mmdet).
    """
    if isinstance(cfg, nn.Module):
        return cfg
    cfg = dict(cfg)
    cfg.setdefault('_scope_', 'mmstructkd')
    return MODELS.build(cfg)
