"""SAGAN-style discriminator for holistic (adversarial) distillation in SKD.

Structured knowledge distillation (Liu et al., CVPR 2019 / TPAMI 2020) adds a
Wasserstein critic D that tells the teacher's segmentation maps from the
student's; the student is trained to fool it. This file holds that critic:

* ``num_stages`` stride-2 convolutions (kernel 4, padding 1), each wrapped in
  spectral normalisation and followed by ``LeakyReLU(0.1)``; channels
  ``base_channels * 2**i`` (64 -> 128 -> 256 -> 512 by default);
* a SAGAN self-attention block after the stages listed in ``attention_after``
  (the 256- and the 512-channel stage by default);
* a head: one unpadded 4x4 convolution to a single channel, averaged over the
  positions it produces, giving one score per image, shape (N,).

Spectral norm: ``torch.nn.utils.parametrizations.spectral_norm``. The classic
hook-based ``torch.nn.utils.spectral_norm`` keeps the normalised weight as a
plain non-leaf attribute after a forward pass in train mode, so
``copy.deepcopy`` of the module fails (mmengine's EMA and model copies use
deepcopy); the parametrization version deep-copies, loads from
``torch.load(weights_only=True)`` state dicts and works under DDP. Its one
limit: ``torch.save(module)`` (pickling the whole module) is refused; save
``state_dict()`` instead, as mmengine checkpoints do. As in the SKD code,
spectral norm wraps the four strided convolutions only; the attention 1x1
convolutions and the head are plain (the SAGAN paper also normalises those).

Head on small maps: the official code ends with an unpadded 4x4 convolution,
which needs a 4x4 map after the stages, i.e. logits of at least ~64x64 (the
official 65x65 crop-level logits give exactly 4x4 -> one score). Here any
input of at least 1x1 works:

* before a strided convolution, a map with a side of 1 is zero-padded to 2
  (the convolution's own padding is zeros too), so sides never reach 0;
* before the head, a map smaller than 4x4 is zero-padded (centred) to 4x4;
* the head's output map is averaged over its positions. The official loss
  takes the mean over the same positions, so for maps >= 4x4 the scores agree
  with the official network; only the gradient penalty differs by the number
  of head positions (official: gradient of their sum; here: of their mean,
  so the penalty does not depend on the input resolution). At the official
  65x65 size there is one position and both agree exactly.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from mmstructkd.registry import MODELS

INPUT_MODES = ('logits', 'softmax_image')
INPUT_NORMS = (None, 'batchnorm', 'tanh')

# Kernel of the official head convolution (unpadded).
HEAD_KERNEL_SIZE = 4


class SelfAttention2d(nn.Module):
    """SAGAN self-attention block (Zhang et al., 2019) with a residual.

    For a map x of shape (N, C, H, W) with P = H*W positions::

        q = W_q x, k = W_k x   (1x1 convs to C // reduction channels)
        v = W_v x              (1x1 conv to C channels)
        beta[n, i, j] = softmax_j(sum_c q[n, c, i] * k[n, c, j])
        o[n, c, i] = sum_j v[n, c, j] * beta[n, i, j]
        y = x + gamma * o

    ``gamma`` starts at 0, so the block is the identity at initialisation and
    the critic learns how much non-local evidence to mix in. As in SAGAN the
    logits are not scaled by sqrt(d).

    Args:
        channels: C, the number of input (and output) channels.
        reduction: channel reduction of the query/key projections.
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        if channels // reduction < 1:
            raise ValueError(
                f'SelfAttention2d: channels={channels} is too small for '
                f'reduction={reduction}: the query/key projections would have '
                f'{channels // reduction} channels. Use at least {reduction} '
                f'channels (raise base_channels of the discriminator).')
        self.channels = channels
        self.query = nn.Conv2d(channels, channels // reduction, 1)
        self.key = nn.Conv2d(channels, channels // reduction, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        """Apply attention over all positions.

        Args:
            x: (N, C, H, W) feature map.

        Returns:
            (N, C, H, W) tensor ``x + gamma * attention(x)``.
        """
        n, c, h, w = x.shape
        query = self.query(x).flatten(2)  # (N, C', P)
        key = self.key(x).flatten(2)  # (N, C', P)
        value = self.value(x).flatten(2)  # (N, C, P)
        # attention[n, i, j]: weight of position j for the query at i.
        attention = torch.softmax(query.transpose(1, 2) @ key, dim=-1)
        out = (value @ attention.transpose(1, 2)).view(n, c, h, w)
        return x + self.gamma * out


def pad_to_min_size(x: Tensor, min_size: int) -> Tensor:
    """Zero-pad the last two dims of ``x`` up to ``min_size`` each.

    The padding is split as evenly as possible (one odd row/column goes to
    the bottom/right). Maps already large enough are returned unchanged.
    """
    pad_h = max(0, min_size - x.shape[-2])
    pad_w = max(0, min_size - x.shape[-1])
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2,
                     pad_h - pad_h // 2))


@MODELS.register_module()
class SAGANDiscriminator(nn.Module):
    """Wasserstein critic of SKD's holistic distillation, one score per image.

    Input modes (``input_mode``):

    * ``'logits'``: D sees the segmentation logits as they are, (N, K, H, W)
      (the TPAMI code). ``in_channels = num_classes = K``.
    * ``'softmax_image'``: D sees ``concat(softmax_K(logits), resize(image))``
      with the image resized bilinearly to the logits' H x W (the CVPR code
      and the paper's text). ``in_channels = num_classes + image_channels``.

    Give ``in_channels`` or ``num_classes`` (or both, consistently); the other
    is derived from ``input_mode`` and ``image_channels``.

    Args:
        in_channels: channels of the critic's input (see above).
        base_channels: channels of the first stage; stage i has
            ``base_channels * 2**i``.
        num_stages: number of stride-2 spectral-normalised convolutions.
        attention_after: indices of the stages followed by self-attention
            (default: the 256- and 512-channel stages of the official net).
        negative_slope: slope of the LeakyReLU after each stage.
        input_mode: ``'logits'`` or ``'softmax_image'``.
        num_classes: K, channels of the segmentation logits.
        image_channels: channels of the image in ``'softmax_image'`` mode.
        input_norm: optional normalisation of the built input, applied inside
            the critic (after the point where the gradient penalty
            interpolates): ``None`` (default), ``'batchnorm'`` (the official
            code's default ``preprocess_GAN_mode=1``) or ``'tanh'``. Batch
            norm makes each score depend on the whole batch, which the
            per-sample gradient penalty assumes it does not, hence off by
            default.

    Example:
        >>> D = SAGANDiscriminator(num_classes=19)
        >>> D(torch.randn(2, 19, 65, 65)).shape
        torch.Size([2])
    """

    def __init__(self,
                 in_channels: Optional[int] = None,
                 base_channels: int = 64,
                 num_stages: int = 4,
                 attention_after: Sequence[int] = (2, 3),
                 negative_slope: float = 0.1,
                 input_mode: str = 'logits',
                 num_classes: Optional[int] = None,
                 image_channels: int = 3,
                 input_norm: Optional[str] = None) -> None:
        super().__init__()
        if input_mode not in INPUT_MODES:
            raise ValueError(
                f'SAGANDiscriminator: input_mode must be one of {INPUT_MODES}'
                f', got {input_mode!r}.')
        if input_norm not in INPUT_NORMS:
            raise ValueError(
                f'SAGANDiscriminator: input_norm must be one of {INPUT_NORMS}'
                f', got {input_norm!r}.')
        if num_stages < 1:
            raise ValueError(
                f'SAGANDiscriminator: num_stages must be >= 1, got '
                f'{num_stages}.')
        attention_after = tuple(sorted(set(int(i) for i in attention_after)))
        for i in attention_after:
            if not 0 <= i < num_stages:
                raise ValueError(
                    f'SAGANDiscriminator: attention_after={attention_after} '
                    f'names stage {i}, but stages are numbered 0 to '
                    f'{num_stages - 1} (num_stages={num_stages}).')
        self.input_mode = input_mode
        self.image_channels = image_channels if \
            input_mode == 'softmax_image' else 0
        self.in_channels, self.num_classes = self._resolve_channels(
            in_channels, num_classes)
        self.attention_after = attention_after

        if input_norm == 'batchnorm':
            self.input_norm = nn.BatchNorm2d(self.in_channels)
        elif input_norm == 'tanh':
            self.input_norm = nn.Tanh()
        else:
            self.input_norm = nn.Identity()

        stages = []
        channels = self.in_channels
        for i in range(num_stages):
            out_channels = base_channels * 2**i
            layers = [
                spectral_norm(
                    nn.Conv2d(channels, out_channels, 4, stride=2,
                              padding=1)),
                nn.LeakyReLU(negative_slope),
            ]
            if i in attention_after:
                layers.append(SelfAttention2d(out_channels))
            stages.append(nn.Sequential(*layers))
            channels = out_channels
        self.stages = nn.ModuleList(stages)
        self.head = nn.Conv2d(channels, 1, HEAD_KERNEL_SIZE)

    def _resolve_channels(self, in_channels: Optional[int],
                          num_classes: Optional[int]) -> Tuple[int, int]:
        extra = self.image_channels
        how = (f"input_mode={self.input_mode!r}" +
               (f' adds image_channels={extra}' if extra else ''))
        if in_channels is None and num_classes is None:
            raise ValueError(
                'SAGANDiscriminator: give in_channels or num_classes (the '
                'number of channels of the segmentation logits).')
        if num_classes is None:
            num_classes = in_channels - extra
            if num_classes < 1:
                raise ValueError(
                    f'SAGANDiscriminator: in_channels={in_channels} leaves '
                    f'{num_classes} channels for the logits ({how}); set '
                    f'in_channels = num_classes + {extra} or give '
                    f'num_classes instead.')
        elif in_channels is None:
            in_channels = num_classes + extra
        elif in_channels != num_classes + extra:
            raise ValueError(
                f'SAGANDiscriminator: in_channels={in_channels} does not '
                f'match num_classes={num_classes} ({how}): expected '
                f'in_channels={num_classes + extra}. Give only num_classes '
                f'and in_channels is derived.')
        return in_channels, num_classes

    def build_input(self,
                    seg_logits: Tensor,
                    image: Optional[Tensor] = None) -> Tensor:
        """Turn segmentation logits (and the image) into the critic's input.

        Args:
            seg_logits: (N, K, H, W) logits.
            image: (N, image_channels, H_img, W_img) image batch, required in
                ``'softmax_image'`` mode and ignored in ``'logits'`` mode.

        Returns:
            (N, in_channels, H, W) tensor.
        """
        if seg_logits.dim() != 4:
            raise ValueError(
                f'SAGANDiscriminator: seg_logits must be (N, K, H, W), got '
                f'shape {tuple(seg_logits.shape)}.')
        if seg_logits.shape[1] != self.num_classes:
            raise ValueError(
                f'SAGANDiscriminator: expected seg_logits with '
                f'{self.num_classes} channels (in_channels={self.in_channels}'
                f', input_mode={self.input_mode!r}), got shape '
                f'{tuple(seg_logits.shape)}. Set num_classes='
                f'{seg_logits.shape[1]} (in_channels is then derived).')
        if self.input_mode == 'logits':
            return seg_logits
        if image is None:
            raise ValueError(
                "SAGANDiscriminator: input_mode='softmax_image' needs the "
                'image batch: call D(seg_logits, image).')
        if image.dim() != 4 or image.shape[1] != self.image_channels or \
                image.shape[0] != seg_logits.shape[0]:
            raise ValueError(
                f'SAGANDiscriminator: image must be (N, {self.image_channels}'
                f', H, W) with N={seg_logits.shape[0]} as in seg_logits, got '
                f'shape {tuple(image.shape)}.')
        image = F.interpolate(
            image.to(seg_logits.dtype),
            size=seg_logits.shape[-2:],
            mode='bilinear',
            align_corners=False)
        return torch.cat([seg_logits.softmax(dim=1), image], dim=1)

    def score_input(self, inputs: Tensor) -> Tensor:
        """Score an input already built by :meth:`build_input`.

        The gradient penalty differentiates this map: it interpolates
        between built inputs, so in ``'softmax_image'`` mode the penalty is
        taken in the space of (softmax, image) maps, as in the CVPR code.

        Args:
            inputs: (N, in_channels, H, W), H, W >= 1.

        Returns:
            (N,) scores.
        """
        if inputs.dim() != 4 or inputs.shape[1] != self.in_channels:
            raise ValueError(
                f'SAGANDiscriminator: the critic input must be (N, '
                f'{self.in_channels}, H, W), got {tuple(inputs.shape)}.')
        x = self.input_norm(inputs)
        for stage in self.stages:
            # A k4 s2 p1 conv rejects a side of 1 (padded to 3 < kernel 4).
            x = stage(pad_to_min_size(x, 2))
        x = self.head(pad_to_min_size(x, HEAD_KERNEL_SIZE))
        return x.mean(dim=(1, 2, 3))

    def forward(self,
                seg_logits: Tensor,
                image: Optional[Tensor] = None) -> Tensor:
        """Score segmentation maps, one critic value per image.

        Args:
            seg_logits: (N, K, H, W) logits, any H, W >= 1.
            image: (N, image_channels, H_img, W_img), needed in
                ``'softmax_image'`` mode only.

        Returns:
            (N,) scores (higher: more teacher-like).
        """
        return self.score_input(self.build_input(seg_logits, image))
