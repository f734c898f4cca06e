"""The student- and teacher-side halves of FBKD (Zhang and Ma, ICLR 2021).

"Improve Object Detection with Feature-based Knowledge Distillation: Towards
Accurate and Efficient Detectors". Each side turns one feature map into the
pieces that ``FBKDLoss`` compares: spatial and channel attention masks (where
and on which channels the network's activations are large), spatial and
channel poolings of the map, and the output of a non-local block (the
relations between positions). The student side also adapts its map, its
poolings and its relations to the teacher's channels with small learned
layers. Both connectors are trained with the student and dropped at export.

The tuples follow mmrazor's ``FBKDStudentConnector`` /
``FBKDTeacherConnector`` so that its FBKD configs port unchanged:

- student: ``(s_spatial_mask, s_channel_mask, s_channel_pool_adapt,
  s_spatial_pool_adapt, s_relation_adapt, s_feat_adapt)``;
- teacher: ``(t_spatial_mask, t_channel_mask, t_spatial_pool, t_relation,
  t_feat)``.
"""
from typing import Dict, Optional, Tuple

import torch
from mmcv.cnn import NonLocal2d
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmstructkd.registry import MODELS


def fbkd_attention_masks(x: Tensor,
                         spatial_T: float = 0.5,
                         channel_T: float = 0.5) -> Tuple[Tensor, Tensor]:
    """FBKD's spatial and channel attention masks of one feature map.

    With ``x`` of shape (N, C, H, W)::

        a_s[n, h, w] = 1 / C * sum_c |x[n, c, h, w]|
        M_s[n, 0, h, w] = H * W * softmax_{(h, w)}(a_s[n] / spatial_T)
        a_c[n, c] = 1 / (H * W) * sum_{h, w} |x[n, c, h, w]|
        M_c[n, c, 0, 0] = C * softmax_c(a_c[n] / channel_T)

    so that every sample's spatial mask sums to H * W and its channel mask
    to C (a mask of all ones when the activations are uniform). A lower
    temperature sharpens the masks. Paper, Eq. 1-2; the masks are rescaled
    by H*W and C as in the authors' code and mmrazor.

    Args:
        x: feature map, shape (N, C, H, W).
        spatial_T: temperature of the spatial softmax.
        channel_T: temperature of the channel softmax.

    Returns:
        ``(M_s, M_c)`` of shapes (N, 1, H, W) and (N, C, 1, 1).
    """
    batch, channels, height, width = x.shape
    magnitude = x.abs()
    spatial = magnitude.mean(dim=1).reshape(batch, -1)
    spatial_mask = torch.softmax(spatial / spatial_T, dim=1) * (height * width)
    channel = magnitude.mean(dim=(2, 3))
    channel_mask = torch.softmax(channel / channel_T, dim=1) * channels
    return (spatial_mask.reshape(batch, 1, height, width),
            channel_mask.reshape(batch, channels, 1, 1))


class NonLocalRelation(NonLocal2d):
    """mmcv's ``NonLocal2d`` with a configurable sub-sampling stride.

    ``y = x + W_out(sum_j f(theta(x)_i, phi(x)_j) g(x)_j)`` with 1x1
    convolutions ``theta``, ``phi``, ``g`` (to ``C / reduction`` channels)
    and ``W_out`` (back to C, followed by a norm layer), and the pairwise
    weight ``f`` given by ``mode`` (``dot_product``: ``theta_i . phi_j /
    P`` with P the number of positions j; ``embedded_gaussian``: softmax
    over j of ``theta_i . phi_j / sqrt(C / reduction)``). With
    ``sub_sample``, ``phi(x)`` and ``g(x)`` are max-pooled with kernel and
    stride ``maxpool_stride`` (so P = (H / s) * (W / s)); mmcv's own block
    fixes that stride to 2.

    Args:
        in_channels: channels of the input (and output) map.
        reduction: channel reduction of theta, phi and g.
        conv_cfg: convolution config (mmcv style).
        norm_cfg: norm layer after ``W_out``; None for none.
        mode: ``'dot_product'``, ``'embedded_gaussian'``, ``'gaussian'`` or
            ``'concatenation'``.
        sub_sample: max-pool ``phi(x)`` and ``g(x)``.
        maxpool_stride: kernel and stride of that pooling.
        zeros_init: start ``W_out``'s last layer at zero (block = identity).
    """

    def __init__(self,
                 in_channels: int,
                 reduction: int = 2,
                 conv_cfg: Dict = dict(type='Conv2d'),
                 norm_cfg: Optional[Dict] = dict(type='BN'),
                 mode: str = 'dot_product',
                 sub_sample: bool = False,
                 maxpool_stride: int = 2,
                 zeros_init: bool = True,
                 **kwargs) -> None:
        super().__init__(
            in_channels=in_channels,
            reduction=reduction,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            mode=mode,
            sub_sample=False,
            zeros_init=zeros_init,
            **kwargs)
        # mmcv pools with a fixed kernel of 2; the FBKD configs use 4 and 8
        # on the finer FPN levels, so the pooling is added here instead.
        self.sub_sample = sub_sample
        self.maxpool_stride = maxpool_stride
        if sub_sample:
            pool = nn.MaxPool2d(kernel_size=maxpool_stride)
            self.g = nn.Sequential(self.g, pool)
            self.phi = (pool if mode == 'gaussian' else nn.Sequential(
                self.phi, pool))


class _FBKDConnectorBase(BaseModule):
    """What both sides share: the input check and the non-local block."""

    side = ''

    def __init__(self,
                 in_channels: int,
                 spatial_T: float = 0.5,
                 channel_T: float = 0.5,
                 init_cfg: Optional[Dict] = None,
                 **non_local_options) -> None:
        """``non_local_options`` (``reduction``, ``conv_cfg``, ``norm_cfg``,
        ``mode``, ``sub_sample``, ``maxpool_stride``, ``zeros_init``) go to
        :class:`NonLocalRelation`, which holds their defaults."""
        super().__init__(init_cfg=init_cfg)
        if spatial_T <= 0 or channel_T <= 0:
            raise ValueError(
                f'{type(self).__name__}: temperatures must be > 0, got '
                f'spatial_T={spatial_T}, channel_T={channel_T}.')
        self.in_channels = in_channels
        self.spatial_T = spatial_T
        self.channel_T = channel_T
        self.non_local = NonLocalRelation(in_channels, **non_local_options)

    def check_input(self, x: Tensor) -> None:
        if not torch.is_tensor(x) or x.dim() != 4 or \
                x.shape[1] != self.in_channels:
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(
                f'{type(self).__name__} expects one (N, {self.in_channels}, '
                f'H, W) map, got {got}: set its in_channels to the '
                f'{self.side} map\'s channel count, and give each FPN level '
                f'its own connector (data_idx in the mapping).')


@MODELS.register_module()
class FBKDStudentConnector(_FBKDConnectorBase):
    """Student side of FBKD: masks, adapted poolings, relations and map.

    For a student map ``x`` of shape (N, C_S, H, W), with ``C_T`` the
    teacher's channels (``teacher_channels``; C_S when None)::

        s_spatial_mask, s_channel_mask = fbkd_attention_masks(x)
        s_channel_pool_adapt = Linear_{C_S -> C_T}(mean_{h,w} x)  (N, C_T)
        s_spatial_pool_adapt = Conv3x3_{1 -> 1}(mean_c x)      (N, 1, H, W)
        s_relation_adapt = Conv1x1_{C_S -> C_T}(NonLocal_S(x))
                                                           (N, C_T, H, W)
        s_feat_adapt = Conv1x1_{C_S -> C_T}(x)                 (N, C_T, H, W)

    with masks of shapes (N, 1, H, W) and (N, C_S, 1, 1). The student's
    non-local block is its own (the teacher connector has another).

    Args:
        in_channels: channels of the student map.
        teacher_channels: channels of the teacher map; None when equal to
            ``in_channels`` (mmrazor requires equal counts).
        reduction, conv_cfg, norm_cfg, mode, sub_sample, maxpool_stride,
            zeros_init: of the non-local block (:class:`NonLocalRelation`).
        spatial_T: temperature of the spatial mask.
        channel_T: temperature of the channel mask.
        init_cfg: mmengine initialisation config.

    Returns (forward):
        ``(s_spatial_mask, s_channel_mask, s_channel_pool_adapt,
        s_spatial_pool_adapt, s_relation_adapt, s_feat_adapt)``.
    """

    side = 'student'

    def __init__(self,
                 in_channels: int,
                 teacher_channels: Optional[int] = None,
                 **kwargs) -> None:
        super().__init__(in_channels, **kwargs)
        out_channels = teacher_channels or in_channels
        self.teacher_channels = out_channels
        self.channel_wise_adaptation = nn.Linear(in_channels, out_channels)
        self.spatial_wise_adaptation = nn.Conv2d(1, 1, kernel_size=3,
                                                 padding=1)
        self.adaptation_layers = nn.Conv2d(in_channels, out_channels,
                                           kernel_size=1)
        self.non_local_adaptation = nn.Conv2d(in_channels, out_channels,
                                              kernel_size=1)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        self.check_input(x)
        spatial_mask, channel_mask = fbkd_attention_masks(
            x, self.spatial_T, self.channel_T)
        channel_pool = self.channel_wise_adaptation(x.mean(dim=(2, 3)))
        spatial_pool = self.spatial_wise_adaptation(
            x.mean(dim=1, keepdim=True))
        relation = self.non_local_adaptation(self.non_local(x))
        feat = self.adaptation_layers(x)
        return (spatial_mask, channel_mask, channel_pool, spatial_pool,
                relation, feat)


@MODELS.register_module()
class FBKDTeacherConnector(_FBKDConnectorBase):
    """Teacher side of FBKD: masks, spatial pooling, relations and map.

    For a teacher map ``x`` of shape (N, C_T, H, W)::

        t_spatial_mask, t_channel_mask = fbkd_attention_masks(x)
        t_spatial_pool = mean_c x                                (N, 1, H, W)
        t_relation = NonLocal_T(x)                               (N, C_T, H, W)
        t_feat = x

    The teacher-side non-local block has trainable weights (trained, as in
    mmrazor, by the relation term of ``FBKDLoss``, with the student); the
    teacher network itself gets no gradient.

    Args: as :class:`FBKDStudentConnector`, without ``teacher_channels``.

    Returns (forward):
        ``(t_spatial_mask, t_channel_mask, t_spatial_pool, t_relation,
        t_feat)``.
    """

    side = 'teacher'

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        self.check_input(x)
        spatial_mask, channel_mask = fbkd_attention_masks(
            x, self.spatial_T, self.channel_T)
        spatial_pool = x.mean(dim=1, keepdim=True)
        relation = self.non_local(x)
        return (spatial_mask, channel_mask, spatial_pool, relation, x)
