"""Connectors adapt a student tensor to the teacher's shape before a loss."""
from typing import Dict, Optional, Sequence, Union

from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmstructkd.registry import MODELS


@MODELS.register_module()
class ConvModuleConnector(BaseModule):
    """Conv (1x1 by default) + optional norm/activation on the student side.

    Used when student and teacher channel counts differ (e.g. a 128-channel
    student feature distilled from a 512-channel teacher feature). Trained
    with the student; dropped when the student is exported.

    Args:
        in_channel: student channels.
        out_channel: teacher channels.
        kernel_size, stride, padding: of the convolution.
        norm_cfg: norm layer after the conv (mmcv style), e.g.
            ``dict(type='BN')``; None for a bare conv.
        act_cfg: activation after the norm; None (default) keeps the output
            linear, which is what a distillation target usually needs.

    Shapes:
        (N, in_channel, H, W) -> (N, out_channel, H', W'); a tuple of such
        tensors (FPN levels) maps level by level with the same weights.
    """

    def __init__(self,
                 in_channel: int,
                 out_channel: int,
                 kernel_size: int = 1,
                 stride: int = 1,
                 padding: int = 0,
                 norm_cfg: Optional[Dict] = dict(type='BN'),
                 act_cfg: Optional[Dict] = None,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channel = in_channel
        self.conv = ConvModule(
            in_channel,
            out_channel,
            kernel_size,
            stride=stride,
            padding=padding,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)

    def forward(self, x: Union[Tensor, Sequence[Tensor]]):
        if isinstance(x, (tuple, list)):
            return type(x)(self.forward(level) for level in x)
        if x.dim() != 4 or x.shape[1] != self.in_channel:
            raise ValueError(
                f'ConvModuleConnector expects (N, {self.in_channel}, H, W) '
                f'inputs, got {tuple(x.shape)}: set its in_channel to the '
                f'student tensor\'s channel count.')
        return self.conv(x)
