"""The student-side half of masked generative distillation (MGD).

Yang et al., "Masked Generative Distillation", ECCV 2022: the student's map is
aligned to the teacher's channels, randomly masked, and a small generator
reconstructs the teacher's map from it; ``MGDLoss`` then compares the
reconstruction with the teacher's map.

The masks come from a ``torch.Generator`` that the connector owns, so that
training is reproducible and ``--resume`` continues the exact mask sequence:
its state is part of the connector's ``state_dict`` (key ``_extra_state``, a
uint8 tensor), saved in every checkpoint and restored on load.
"""
from typing import Optional, Sequence, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmstructkd.registry import MODELS


def random_keep_mask(shape: Sequence[int],
                     lambda_mgd: float,
                     generator: torch.Generator,
                     mask_on_channel: bool = False) -> Tensor:
    """Draw MGD's random mask for a map of ``shape`` (N, C, H, W).

    One uniform draw ``u`` per position (spatial mode: shape (N, 1, H, W))
    or per channel (channel mode: shape (N, C, 1, 1)); the mask is 0 where
    ``u < lambda_mgd`` and 1 elsewhere, so each position (channel) is
    dropped with probability ``lambda_mgd``. (mmrazor drops where
    ``u > 1 - lambda_mgd``: the same distribution.)

    Args:
        shape: (N, C, H, W) of the map to mask.
        lambda_mgd: probability of dropping, in [0, 1].
        generator: the random generator to draw from; the mask is drawn on
            the generator's device.
        mask_on_channel: mask whole channels instead of positions.

    Returns:
        Float32 tensor of 0s and 1s, broadcastable to ``shape``, on the
        generator's device.
    """
    batch, channels, height, width = shape
    draw_shape = ((batch, channels, 1, 1) if mask_on_channel else
                  (batch, 1, height, width))
    uniform = torch.rand(draw_shape, generator=generator,
                         device=generator.device)
    return (uniform >= lambda_mgd).float()


@MODELS.register_module()
class MGDConnector(BaseModule):
    """Align, randomly mask and regenerate a student map (MGD).

    ``G(S) = conv3x3(relu(conv3x3(M * align(S))))`` where ``align`` is a
    1x1 convolution to the teacher's channels (identity when the counts are
    equal) and ``M`` a random 0/1 mask (:func:`random_keep_mask`) drawn at
    every call, in training and in evaluation alike. Trained with the
    student; dropped when the student is exported.

    Randomness: masks are drawn on the CPU from the connector's own
    ``torch.Generator`` (seeded with ``seed``), then moved to the input's
    device, so a run draws the same masks on any device, and the
    generator's state (in ``state_dict()``) moves between CPU and GPU runs.
    The global RNG is neither used nor advanced. Under DDP every rank starts
    from the same seed, so all ranks draw the same masks (on different
    images); checkpoints, saved from rank 0, then resume every rank exactly.

    Args:
        student_channels: channels of the student map.
        teacher_channels: channels of the teacher map (and of the output).
        lambda_mgd: probability of masking a position (or channel); the
            paper's detection setting is 0.65.
        mask_on_channel: mask whole channels instead of positions.
        seed: seed of the mask generator. Give each connector of a config
            its own seed so that, e.g., the FPN levels draw different masks.
        init_cfg: mmengine initialisation config.

    Shapes:
        (N, student_channels, H, W) -> (N, teacher_channels, H, W); a tuple
        of such tensors (FPN levels) maps level by level with the same
        weights, drawing one mask per level in order.
    """

    def __init__(self,
                 student_channels: int,
                 teacher_channels: int,
                 lambda_mgd: float = 0.65,
                 mask_on_channel: bool = False,
                 seed: int = 0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not 0 <= lambda_mgd <= 1:
            raise ValueError(
                f'MGDConnector: lambda_mgd is a probability in [0, 1], got '
                f'{lambda_mgd}.')
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.lambda_mgd = lambda_mgd
        self.mask_on_channel = mask_on_channel
        self.seed = seed
        if student_channels != teacher_channels:
            self.align = nn.Conv2d(student_channels, teacher_channels,
                                   kernel_size=1)
        else:
            self.align = None
        self.generation = nn.Sequential(
            nn.Conv2d(teacher_channels, teacher_channels, kernel_size=3,
                      padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(teacher_channels, teacher_channels, kernel_size=3,
                      padding=1))
        # A plain attribute, not a buffer: model.to(device) must not move
        # it (masks are drawn on the CPU), and EMA must not average it.
        self.mask_generator = torch.Generator().manual_seed(seed)

    def get_extra_state(self) -> Tensor:
        """The mask generator's state (uint8 tensor), for ``state_dict``."""
        return self.mask_generator.get_state()

    def set_extra_state(self, state: Tensor) -> None:
        """Restore the mask generator's state from ``load_state_dict``."""
        if not torch.is_tensor(state) or state.dtype != torch.uint8:
            raise TypeError(
                'MGDConnector: the saved mask generator state must be a '
                f'uint8 tensor, got {type(state).__name__}.')
        self.mask_generator.set_state(state.detach().cpu().contiguous())

    def forward(self, x: Union[Tensor, Sequence[Tensor]]):
        if isinstance(x, (tuple, list)):
            return type(x)(self.forward(level) for level in x)
        if x.dim() != 4 or x.shape[1] != self.student_channels:
            raise ValueError(
                f'MGDConnector expects (N, {self.student_channels}, H, W) '
                f'inputs, got {tuple(x.shape)}: set its student_channels to '
                f'the student tensor\'s channel count.')
        if self.align is not None:
            x = self.align(x)
        mask = random_keep_mask(x.shape, self.lambda_mgd,
                                self.mask_generator, self.mask_on_channel)
        mask = mask.to(device=x.device, dtype=x.dtype, non_blocking=True)
        return self.generation(x * mask)
