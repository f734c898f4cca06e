"""Reach the model inside a DDP (or DataParallel) wrapper."""
from mmengine.model import is_model_wrapper
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """``model.module`` when ``model`` is a model wrapper (torch's DDP and
    DataParallel, mmengine's and this package's DDP wrappers: everything in
    mmengine's ``MODEL_WRAPPERS``), else ``model`` itself."""
    return model.module if is_model_wrapper(model) else model
