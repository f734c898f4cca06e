"""Pieces shared by the distillation losses.

Kept here once so each loss file holds only its own formula: shape checks with
messages that name the loss, float32 computation under autocast, and the loop
over the levels of a feature pyramid (:func:`sum_over_levels`, and
:class:`LevelSumLoss`, the module that applies it).
"""
import functools
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

TensorOrLevels = Union[Tensor, Sequence[Tensor]]


def check_same_shape(loss_name: str,
                     preds_S: Tensor,
                     preds_T: Tensor,
                     dims: Optional[Sequence[int]] = None,
                     what: str = 'shape',
                     hint: str = '') -> None:
    """Raise a ``ValueError`` naming the loss when S and T shapes differ.

    Args:
        loss_name: name of the loss, used in the message.
        preds_S: student tensor.
        preds_T: teacher tensor.
        dims: dimensions to compare; all of them when None.
        what: what the compared dimensions are called in the message
            (e.g. ``'spatial size'``).
        hint: the fix to suggest (e.g. a connector to add).
    """
    if preds_S.dim() != preds_T.dim():
        raise ValueError(
            f'{loss_name}: student and teacher tensors must have the same '
            f'number of dimensions, got preds_S {tuple(preds_S.shape)} and '
            f'preds_T {tuple(preds_T.shape)}. {hint}'.strip())
    if dims is None:
        dims = range(preds_S.dim())
    size_S = tuple(preds_S.shape[d] for d in dims)
    size_T = tuple(preds_T.shape[d] for d in dims)
    if size_S != size_T:
        raise ValueError(
            f'{loss_name}: student and teacher {what} differ: preds_S has '
            f'shape {tuple(preds_S.shape)} and preds_T has shape '
            f'{tuple(preds_T.shape)}. {hint}'.strip())


def check_ndim(loss_name: str, name: str, tensor: Tensor, ndim: int) -> None:
    """Raise a ``ValueError`` naming the loss if ``tensor.dim() != ndim``."""
    if tensor.dim() != ndim:
        raise ValueError(
            f'{loss_name}: {name} must be a {ndim}-D tensor, got shape '
            f'{tuple(tensor.shape)}.')


def check_map_pair(loss_name: str,
                   preds_S: Tensor,
                   preds_T: Tensor,
                   hint: str = '',
                   channels: Optional[str] = None,
                   channel_hint: str = '') -> None:
    """Check the two (N, C, H, W) maps of a loss that compares them
    position by position.

    Both must be 4-D and of the same batch and spatial sizes; with
    ``channels`` (what the channels are, e.g. ``'channel counts'``), also
    of the same number of channels, checked first. Each mismatch raises a
    ``ValueError`` naming the loss and both shapes.

    Args:
        loss_name: name of the loss, used in the messages.
        preds_S: student map.
        preds_T: teacher map.
        hint: the fix to suggest for a batch or spatial mismatch.
        channels: None when the channel counts may differ.
        channel_hint: the fix to suggest for a channel mismatch.
    """
    check_ndim(loss_name, 'preds_S', preds_S, 4)
    check_ndim(loss_name, 'preds_T', preds_T, 4)
    if channels is not None:
        check_same_shape(loss_name, preds_S, preds_T, dims=(1, ),
                         what=channels, hint=channel_hint)
    check_same_shape(loss_name, preds_S, preds_T, dims=(0, 2, 3),
                     what='batch or spatial sizes', hint=hint)


def connector_hint(preds_S: Tensor, preds_T: Tensor) -> str:
    """The connector that maps the student's channels to the teacher's, as
    a loss's error message suggests it."""
    return ('Add a 1x1 conv connector on the student, e.g. '
            f"dict(type='ConvModuleConnector', in_channel={preds_S.shape[1]}, "
            f'out_channel={preds_T.shape[1]}, kernel_size=1) in the '
            "distiller's `connectors`.")


def float32_math(fn: Callable) -> Callable:
    """Run a loss function in float32 with autocast disabled.

    Softmax/KL, Gram sums and SSIM statistics lose their value in half
    precision (cancellation, overflow of exp), so under ``--amp`` the
    distillation math still runs in float32. Gradients flow back to the
    half-precision inputs through the casts.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device_type = 'cpu'
        for a in list(args) + list(kwargs.values()):
            if isinstance(a, Tensor):
                device_type = a.device.type
                break
        args = tuple(_to_float32(a) for a in args)
        kwargs = {k: _to_float32(v) for k, v in kwargs.items()}
        with torch.autocast(device_type=device_type, enabled=False):
            return fn(*args, **kwargs)

    return wrapper


def _to_float32(x):
    if isinstance(x, Tensor) and x.is_floating_point() \
            and x.dtype != torch.float64:
        return x.float()
    if isinstance(x, (list, tuple)):
        return type(x)(_to_float32(v) for v in x)
    return x


def as_levels(loss_name: str, preds_S: TensorOrLevels,
              preds_T: TensorOrLevels) -> Tuple[Tuple[Tensor, ...], ...]:
    """Normalise one map or a tuple of pyramid levels to two tuples.

    Raises a ``ValueError`` naming the loss when student and teacher have a
    different number of levels.
    """
    levels_S = (preds_S, ) if isinstance(preds_S, Tensor) else tuple(preds_S)
    levels_T = (preds_T, ) if isinstance(preds_T, Tensor) else tuple(preds_T)
    if len(levels_S) != len(levels_T):
        raise ValueError(
            f'{loss_name}: student has {len(levels_S)} feature levels and '
            f'teacher has {len(levels_T)}; distil matching levels only (map '
            f'each level explicitly with data_idx in loss_forward_mappings).')
    return levels_S, levels_T


def sum_over_levels(loss_name: str,
                    level_loss: Callable[[Tensor, Tensor], Tensor],
                    preds_S: TensorOrLevels,
                    preds_T: TensorOrLevels,
                    level_weights: Optional[Sequence[float]] = None) -> Tensor:
    """Weighted sum of ``level_loss`` over the levels of a feature pyramid.

    A single tensor counts as one level. The sum (not the mean) follows
    mmrazor's FPN configs, where each level is its own loss and the total
    is their sum; ``level_weights`` rescales levels individually.
    """
    levels_S, levels_T = as_levels(loss_name, preds_S, preds_T)
    if level_weights is None:
        level_weights = [1.0] * len(levels_S)
    if len(level_weights) != len(levels_S):
        raise ValueError(
            f'{loss_name}: level_weights has {len(level_weights)} entries '
            f'but there are {len(levels_S)} feature levels.')
    total = None
    for weight, s, t in zip(level_weights, levels_S, levels_T):
        term = weight * level_loss(s, t)
        total = term if total is None else total + term
    return total


class LevelSumLoss(nn.Module):
    """A loss module on one map or on each level of a feature pyramid.

    ``forward`` returns ``loss_weight * sum_l level_weights[l] *
    level_loss(S_l, T_l)`` (:func:`sum_over_levels`). A subclass sets
    ``LOSS_NAME`` (for error messages) and implements :meth:`level_loss`
    with its function of one level.

    Args:
        loss_weight: multiplier of the loss.
        level_weights: one weight per pyramid level; all 1 when None.
    """

    LOSS_NAME = 'LevelSumLoss'

    def __init__(self,
                 loss_weight: float = 1.0,
                 level_weights: Optional[Sequence[float]] = None) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.level_weights = level_weights

    def level_loss(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        """The unweighted loss of one level."""
        raise NotImplementedError

    def forward(self, preds_S: TensorOrLevels,
                preds_T: TensorOrLevels) -> Tensor:
        """Compute the weighted loss.

        Args:
            preds_S: student map (N, C, H, W) or a tuple of levels.
            preds_T: teacher map(s), as many levels.

        Returns:
            Scalar tensor, already multiplied by ``loss_weight``.
        """
        return self.loss_weight * sum_over_levels(
            self.LOSS_NAME, self.level_loss, preds_S, preds_T,
            self.level_weights)
