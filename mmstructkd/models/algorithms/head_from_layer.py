"""Run a dense detector head from one of its tower layers on (CrossKD).

mmdet's RetinaNet-style heads (``RetinaHead``, ``GFLHead``, ``ATSSHead``)
share one layout: two towers of ``stacked_convs`` ConvModules
(``cls_convs``, ``reg_convs``) applied to each FPN level, then a final
classification conv and a final box conv, and for GFL/ATSS a learnt
``Scale`` per level on the box output. :func:`head_from_layer` calls those
submodules of a head, in that order, from tower layer ``k`` on: it holds no
copy of any head's code, only the order in which the head's own modules are
called. ``k = 0`` is the head's input (the FPN level), ``k = stacked_convs``
the input of the final convs.
"""
from typing import List, NamedTuple, Optional, Sequence

import torch
from torch import Tensor, nn

from ..losses.pkd import standardize_channels

# (classification conv, box conv) of the supported heads, by attribute.
FINAL_CONVS = (('retina_cls', 'retina_reg'), ('gfl_cls', 'gfl_reg'),
               ('atss_cls', 'atss_reg'))


class DenseHeadLayers(NamedTuple):
    """The modules of a dense head that :func:`head_from_layer` calls."""
    cls_convs: nn.ModuleList
    reg_convs: nn.ModuleList
    cls_out: nn.Module
    reg_out: nn.Module
    # One Scale per FPN level on the box output (GFL, ATSS), or None.
    scales: Optional[nn.ModuleList]

    @property
    def depth(self) -> int:
        return len(self.cls_convs)


class HeadRun(NamedTuple):
    """What :func:`head_from_layer` returns, one entry per FPN level."""
    cls_scores: List[Tensor]
    bbox_preds: List[Tensor]
    # The tower features at the input of layer ``keep`` (None without it).
    cls_feats: Optional[List[Tensor]]
    reg_feats: Optional[List[Tensor]]


def dense_head_layers(head: nn.Module, where: str = 'bbox_head'
                      ) -> DenseHeadLayers:
    """The towers, final convs and scales of ``head`` (at ``where`` in its
    detector); a ``TypeError`` naming what is missing for other heads."""
    towers = [getattr(head, name, None) for name in ('cls_convs',
                                                       'reg_convs')]
    final = next((pair for pair in FINAL_CONVS
                  if all(hasattr(head, name) for name in pair)), None)
    if not all(isinstance(t, nn.ModuleList) for t in towers) or \
            final is None or len(towers[0]) != len(towers[1]):
        raise TypeError(
            f'{where} ({type(head).__name__}) cannot be run from a tower '
            f'layer: CrossKD needs a dense head with cls_convs and reg_convs '
            f'towers of equal depth and one of the final conv pairs '
            f'{list(FINAL_CONVS)} (RetinaHead, GFLHead, ATSSHead).')
    scales = getattr(head, 'scales', None)
    return DenseHeadLayers(
        towers[0], towers[1], getattr(head, final[0]),
        getattr(head, final[1]),
        scales if isinstance(scales, nn.ModuleList) else None)


def width_at_layer(layers: DenseHeadLayers, layer: int) -> int:
    """Channels the head takes at the input of tower layer ``layer`` (the
    FPN width for 0, else the tower width)."""
    module = layers.cls_convs[layer] if layer < layers.depth \
        else layers.cls_out
    return module.in_channels


def check_layer(layers: DenseHeadLayers, layer: int, where: str) -> None:
    """``layer`` must be in ``0..stacked_convs`` of the head at ``where``."""
    if isinstance(layer, bool) or not isinstance(layer, int) or \
            not 0 <= layer <= layers.depth:
        raise ValueError(
            f'cross_head.layer must be an int in 0..{layers.depth} (the '
            f'stacked_convs of the {where}), got {layer!r}.')


def head_from_layer(layers: DenseHeadLayers,
                    cls_feats: Sequence[Tensor],
                    reg_feats: Sequence[Tensor],
                    layer: int,
                    keep: Optional[int] = None) -> HeadRun:
    """Run the head's modules from tower layer ``layer`` on.

    Level by level: ``cls_convs[layer:]`` then the classification conv on
    ``cls_feats[i]``; ``reg_convs[layer:]``, the box conv and
    ``scales[i]`` (if the head has them) on ``reg_feats[i]``. Gradients
    flow to the inputs as the caller's autograd mode allows; the head's
    parameters get gradients only if they require them.

    Args:
        layers: the head's modules (:func:`dense_head_layers`).
        cls_feats, reg_feats: per FPN level, the features at the input of
            tower layer ``layer`` of each tower, ``(N, C, H, W)``.
        layer: the first tower layer to run, ``0..stacked_convs``.
        keep: also return the tower features at the input of this layer
            (``layer <= keep <= stacked_convs``).

    Returns:
        :class:`HeadRun`: class scores and box predictions per level (and
        the kept features).
    """
    if len(cls_feats) != len(reg_feats):
        raise ValueError(f'{len(cls_feats)} classification and '
                         f'{len(reg_feats)} box feature levels.')
    if layers.scales is not None and len(cls_feats) > len(layers.scales):
        raise ValueError(f'{len(cls_feats)} FPN levels but the head has '
                         f'{len(layers.scales)} scales.')
    run = HeadRun([], [], [] if keep is not None else None,
                  [] if keep is not None else None)
    for level, (cls_feat, reg_feat) in enumerate(zip(cls_feats, reg_feats)):
        for index in range(layer, layers.depth + 1):
            if index == keep:
                run.cls_feats.append(cls_feat)
                run.reg_feats.append(reg_feat)
            if index < layers.depth:
                cls_feat = layers.cls_convs[index](cls_feat)
                reg_feat = layers.reg_convs[index](reg_feat)
        bbox_pred = layers.reg_out(reg_feat)
        if layers.scales is not None:
            bbox_pred = layers.scales[level](bbox_pred).float()
        run.cls_scores.append(layers.cls_out(cls_feat))
        run.bbox_preds.append(bbox_pred)
    return run


def match_channel_statistics(feats_S: Tensor, feats_T: Tensor) -> Tensor:
    """The student's map with each channel standardised over (N, H, W)
    (``standardize_channels``) and given the teacher's mean and standard
    deviation of that channel: ``(s - mu_S) / (sigma_S + eps) * sigma_T +
    mu_T``. Keeps the teacher's layers in the range of inputs they were
    trained on; the teacher side carries no gradient."""
    if feats_S.shape[1] != feats_T.shape[1]:
        raise ValueError(
            f'cannot match channel statistics of a {feats_S.shape[1]}-channel '
            f'student map to a {feats_T.shape[1]}-channel teacher map.')
    values = feats_T.detach().transpose(0, 1).flatten(1)
    mean = values.mean(dim=1)
    std = values.std(dim=1) if values.shape[1] > 1 else torch.zeros_like(mean)
    view = (1, -1) + (1, ) * (feats_S.dim() - 2)
    return standardize_channels(feats_S) * std.view(view) + mean.view(view)
