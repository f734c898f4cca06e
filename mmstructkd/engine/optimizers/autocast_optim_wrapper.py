"""Mixed precision without loss scaling, on any device (bf16 on CPU)."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from mmstructkd.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Run the forward under ``torch.autocast`` of the model's device.

    mmengine's ``AmpOptimWrapper`` needs a GPU (it pairs fp16 with a gradient
    scaler). bfloat16 has float32's exponent range, so it needs no loss
    scaling; this wrapper only switches autocast on, which lets ``--amp``
    work on CPU. The distillation losses compute in float32 under it (they
    disable autocast for their math).

    Args:
        dtype: the autocast dtype, ``'bfloat16'`` (default) or
            ``'float16'`` (GPU only; prefer ``AmpOptimWrapper`` there).
        **kwargs: as ``OptimWrapper``.
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs) -> None:
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model: nn.Module):
        device_type = 'cpu'
        for param in model.parameters():
            device_type = param.device.type
            break
        with super().optim_context(model), torch.autocast(
                device_type=device_type, dtype=self.cast_dtype):
            yield
