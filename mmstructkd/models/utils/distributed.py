"""Decisions that every process of a distributed run must take together."""
import torch
from torch import nn


def all_ranks_agree(ok: bool) -> bool:
    """True only if ``ok`` on every process, so that all processes skip a
    non-finite step (or stop) together: one process skipping or stopping
    alone would leave the others waiting in DDP's next all-reduce.

    One all-reduce of a scalar; no communication when not distributed.
    """
    from mmengine.dist import all_reduce, get_world_size
    if get_world_size() == 1:
        return ok
    flag = torch.tensor([0.0 if ok else 1.0])
    all_reduce(flag, op='sum')
    return flag.item() == 0


def average_gradients(module: nn.Module) -> None:
    """Average the gradients of ``module`` over all processes (for modules
    kept outside DDP, e.g. the adversarial critic)."""
    from mmengine.dist import all_reduce, get_world_size
    if get_world_size() == 1:
        return
    for param in module.parameters():
        if param.grad is not None:
            all_reduce(param.grad, op='mean')
