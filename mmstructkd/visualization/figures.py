"""Figures of what each distillation loss compares, teacher next to student.

One *painter* per loss type (the registered class name of the loss) turns
the tensors the distiller feeds that loss into one picture (sometimes none):
:func:`paint_loss` looks the painter up. The maps come from
:mod:`mmstructkd.visualization.distill_maps`; this module only lays them out
with matplotlib (no pyplot state: each figure has its own Agg canvas) and
returns RGB arrays, which ``tools/visualize_distill.py`` hands to mmengine's
visualizer backends.

Layout shared by all pictures: the network input on the left (spanning the
rows), then one row per channel / level / stage with the teacher's map, the
student's map on the same colour scale, and their difference. Maps are drawn
over the image frame they cover (a stride-8 map over the whole input), so
rows of different resolutions line up with the image.
"""
import textwrap
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter
from torch import Tensor

from . import distill_maps as maps
from .logs import moving_average, series

__all__ = [
    'VisContext', 'DistillFigure', 'PAINTERS', 'register_painter',
    'paint_loss', 'paint_predictions', 'paint_critic_scores',
    'figure_to_rgb'
]

PANEL_INCHES = 2.3
DPI = 100
# Colour maps: magnitudes (probabilities, affinities, boundaries) in viridis,
# divergences in magma, signed differences in a diverging map centred at 0.
CMAP = 'viridis'
CMAP_DIVERGENCE = 'magma'
CMAP_SIGNED = 'RdBu_r'
CMAP_SSIM = 'RdYlGn'
NODE_MARKER = dict(marker='+', markersize=11, markeredgewidth=2,
                   color='red')


@dataclass
class VisContext:
    """What the painters need besides the loss's inputs.

    Args:
        image: the network input as an RGB uint8 image (H_img, W_img, 3),
            before normalisation and padding.
        frame: ``(H_in, W_in)`` of the (padded) input tensor; feature maps
            are laid over this frame.
        point: ``(y, x)`` in input pixels of the node whose affinities /
            relations are drawn.
        class_names: names of the classes (label of logit channels).
        palette: one RGB colour per class.
        num_channels: how many channels the CWD picture shows.
        sources: recorder sources of the loss's arguments, argument name ->
            module path (used in titles).
        scalars: records of a training log (``scalars.json``), for the
            critic's scores over training; None when not given.
        critic_scores: D(teacher), D(student) of the checkpoint's critic
            on this image, if it has one.
    """
    image: np.ndarray
    frame: Tuple[int, int]
    point: Tuple[float, float]
    class_names: Sequence[str] = ()
    palette: Sequence[Sequence[int]] = ()
    num_channels: int = 4
    sources: Dict[str, str] = field(default_factory=dict)
    scalars: Optional[List[dict]] = None
    critic_scores: Optional[Tuple[float, float]] = None


@dataclass
class DistillFigure:
    """One picture: a file-name stem, its pixels and the maps it shows."""
    name: str
    image: np.ndarray
    maps: Dict[str, np.ndarray] = field(default_factory=dict)


PAINTERS: Dict[str, Callable] = {}


def register_painter(*loss_types: str) -> Callable:
    """Register a painter for losses of these registered class names."""

    def wrap(fn: Callable) -> Callable:
        for loss_type in loss_types:
            PAINTERS[loss_type] = fn
        return fn

    return wrap


def paint_loss(loss_name: str, loss, inputs: Dict[str, object],
               ctx: VisContext) -> List[DistillFigure]:
    """Pictures of one distillation loss, or ``[]`` if its type has none.

    Args:
        loss_name: name of the loss in ``distill_losses``.
        loss: the loss module (its settings are read: tau, scale, ...).
        inputs: the keyword arguments the distiller passes to it.
        ctx: the image and the drawing options.
    """
    painter = PAINTERS.get(type(loss).__name__)
    if painter is None:
        return []
    return painter(loss_name, loss, inputs, ctx)


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """Render a figure to an RGB uint8 array (H, W, 3)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


# ---------------------------------------------------------------------------
# Layout helpers


def _new_figure(rows: int, cols: int, title: str, note: str = ''):
    """A figure with the input image top left, a note on how to read the
    picture under it, and a grid of ``rows x cols`` map panels, each with
    its own colour bar."""
    width = PANEL_INCHES * (cols + 1) + 0.7 * cols
    # One row of maps: the note goes under it, across the figure.
    single = rows == 1
    note_height = 0.6 if single and note else 0.0
    height = PANEL_INCHES * rows + 1.0 + note_height
    fig = Figure(figsize=(width, height), dpi=DPI)
    grid = fig.add_gridspec(
        rows, cols + 1, left=0.02, right=0.94,
        top=1 - 0.95 / height, bottom=(0.15 + note_height) / height,
        wspace=0.5, hspace=0.45)
    fig.suptitle(title, fontsize=11)
    image_ax = fig.add_subplot(grid[0, 0])
    if note and single:
        fig.text(0.02, 0.1 / height, textwrap.fill(note, 150), va='bottom',
                 ha='left', fontsize=8)
    elif note:
        note_ax = fig.add_subplot(grid[1:, 0])
        note_ax.axis('off')
        note_ax.text(0.0, 1.0, textwrap.fill(note, 30), va='top',
                     ha='left', fontsize=8, transform=note_ax.transAxes)
    panels = [[fig.add_subplot(grid[r, c + 1]) for c in range(cols)]
              for r in range(rows)]
    return fig, image_ax, panels


def _show_image(ax, ctx: VisContext, title: str = 'input',
                mark_node: bool = False) -> None:
    height, width = ctx.image.shape[:2]
    ax.imshow(ctx.image, extent=(0, width, height, 0))
    if mark_node:
        ax.plot(ctx.point[1], ctx.point[0], **NODE_MARKER)
    ax.set_title(f'{title} ({height}x{width})', fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _frame_extent(ctx: VisContext, grid_hw: Tuple[int, int],
                  cell: Tuple[float, float] = (1.0, 1.0),
                  offset: Tuple[float, float] = (0.0, 0.0),
                  feat_hw: Optional[Tuple[int, int]] = None):
    """Extent of a map over the input frame.

    A map of ``grid_hw`` cells, each ``cell`` feature positions wide,
    starting ``offset`` positions from the top-left, on a feature map of
    ``feat_hw`` positions (default: ``grid_hw``) that covers the frame.
    """
    feat_hw = feat_hw or grid_hw
    scale_y = ctx.frame[0] / feat_hw[0]
    scale_x = ctx.frame[1] / feat_hw[1]
    top = offset[0] * scale_y
    left = offset[1] * scale_x
    return (left, left + grid_hw[1] * cell[1] * scale_x,
            top + grid_hw[0] * cell[0] * scale_y, top)


def _heatmap(fig, ax, data, ctx: VisContext, title: str, extent,
             vmin=None, vmax=None, cmap=CMAP, label: str = '',
             mark_node: bool = False) -> None:
    data = _numpy(data)
    shown = ax.imshow(data, extent=extent, vmin=vmin, vmax=vmax, cmap=cmap,
                      interpolation='nearest')
    height, width = ctx.image.shape[:2]
    # Only the image, not the padding of the input frame.
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    if mark_node:
        ax.plot(ctx.point[1], ctx.point[0], **NODE_MARKER)
    bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
    # Three significant digits and no offset text (which would sit on
    # the panel's title): probabilities over many positions are small.
    bar.formatter = FuncFormatter(lambda value, _: f'{value:.3g}')
    bar.update_ticks()
    bar.ax.tick_params(labelsize=7)
    if label:
        bar.set_label(label, fontsize=7)


def _numpy(data) -> np.ndarray:
    if isinstance(data, Tensor):
        return data.detach().float().cpu().numpy()
    return np.asarray(data)


def _shared_range(*arrays, floor: Optional[float] = None):
    low = min(float(_numpy(a).min()) for a in arrays)
    high = max(float(_numpy(a).max()) for a in arrays)
    if floor is not None:
        low = min(low, floor)
    if high <= low:
        high = low + 1e-12
    return low, high


def _symmetric(data) -> Tuple[float, float]:
    bound = max(float(np.abs(_numpy(data)).max()), 1e-12)
    return -bound, bound


def _loss_title(loss_name: str, loss, value: Optional[float],
                settings: str) -> str:
    weight = getattr(loss, 'loss_weight', None)
    parts = [f'{loss_name}: {type(loss).__name__}']
    if settings:
        parts.append(f'({settings})')
    title = ' '.join(parts)
    if value is not None:
        title += f'\nloss on this image = {value:.4g}'
        if weight is not None:
            title += f' (weight {weight:g} included)'
    return title


def _loss_value(loss, inputs: Dict[str, object]) -> Optional[float]:
    with torch.no_grad():
        value = loss(**inputs)
    return float(value) if isinstance(value, Tensor) and \
        value.numel() == 1 else None


def _level_name(index: int, num_levels: int, what: str) -> str:
    return what if num_levels == 1 else f'{what} {index}'


def _stride(ctx: VisContext, feat_hw: Tuple[int, int]) -> str:
    stride = ctx.frame[0] / feat_hw[0]
    return f'stride {stride:g}'


# ---------------------------------------------------------------------------
# Painters


@register_painter('ChannelWiseDivergence')
def paint_channel_wise(loss_name: str, loss, inputs: Dict[str, object],
                       ctx: VisContext) -> List[DistillFigure]:
    """Teacher and student channel distributions (softmax over positions).

    One map: the ``ctx.num_channels`` channels with the largest divergence;
    a feature pyramid: the channel with the largest divergence per level.
    """
    levels = maps.as_level_list(inputs['preds_S'], inputs['preds_T'])
    rows = []  # (level index, channel, divergence)
    for index, (level_S, level_T) in enumerate(levels):
        divergences = maps.channel_divergences(level_S, level_T, loss.tau)
        count = ctx.num_channels if len(levels) == 1 else 1
        order = torch.argsort(divergences, descending=True)[:count]
        rows += [(index, int(c), float(divergences[c])) for c in order]
    title = _loss_title(loss_name, loss, _loss_value(loss, inputs),
                        f'tau={loss.tau:g}')
    if len(levels) == 1:
        which = (f'the {len(rows)} of {levels[0][1].shape[1]} channels '
                 f'whose teacher and student distributions differ most')
    else:
        which = ('per pyramid level, the channel whose teacher and student '
                 'distributions differ most')
    note = ('Each channel is a distribution over positions (softmax of '
            f'map / tau). Rows: {which} (KL, largest first). Teacher and '
            'student share a colour scale; right: their difference.')
    fig, image_ax, panels = _new_figure(len(rows), 3, title, note)
    _show_image(image_ax, ctx)
    shown = {}
    for row, (index, channel, divergence) in zip(panels, rows):
        level_S, level_T = levels[index]
        p_T = maps.channel_distributions(level_T, loss.tau)[channel]
        p_S = maps.channel_distributions(level_S, loss.tau)[channel]
        extent = _frame_extent(ctx, tuple(p_T.shape))
        name = _channel_name(channel, level_T.shape[1], ctx)
        where = _level_name(index, len(levels), 'level')
        head = f'{name}' if len(levels) == 1 else f'{where}, {name}'
        low, high = _shared_range(p_T, p_S)
        _heatmap(fig, row[0], p_T, ctx, f'teacher: {head}', extent, low,
                 high, label='p over positions')
        _heatmap(fig, row[1], p_S, ctx, f'student: {head}', extent, low,
                 high, label='p over positions')
        diff = p_T - p_S
        _heatmap(fig, row[2], diff, ctx,
                 f'p_T - p_S, KL={divergence:.3g}', extent,
                 *_symmetric(diff), cmap=CMAP_SIGNED, label='difference')
        shown[f'{index}_{channel}_teacher'] = _numpy(p_T)
        shown[f'{index}_{channel}_student'] = _numpy(p_S)
    return [DistillFigure(loss_name, figure_to_rgb(fig), shown)]


def _channel_name(channel: int, num_channels: int, ctx: VisContext) -> str:
    # Logit channels are classes: name them.
    if ctx.sources.get('preds_T', '').endswith('conv_seg') and \
            num_channels == len(ctx.class_names):
        return f'class {ctx.class_names[channel]!r}'
    return f'channel {channel}'


@register_painter('PairWiseLoss')
def paint_pair_wise(loss_name: str, loss, inputs: Dict[str, object],
                    ctx: VisContext) -> List[DistillFigure]:
    """Affinity of the chosen node with every node, teacher vs student."""
    levels = maps.as_level_list(inputs['preds_S'], inputs['preds_T'])
    nodes = 'every position' if loss.scale is None else \
        f'nodes: {loss.pool}-pooled {loss.scale:g}x{loss.scale:g} windows'
    title = _loss_title(loss_name, loss, _loss_value(loss, inputs), nodes)
    note = ('Cosine affinity of the node at + with every node. The loss is '
            'the mean squared difference of the whole affinity matrices; '
            'this is their row for the node at +. Pick it with --node Y X.')
    fig, image_ax, panels = _new_figure(len(levels), 3, title, note)
    _show_image(image_ax, ctx, mark_node=True)
    shown = {}
    for index, (row, (feat_S, feat_T)) in enumerate(zip(panels, levels)):
        feat_hw = tuple(feat_T.shape[-2:])
        kernel_h, kernel_w, _, _ = maps.node_grid(*feat_hw, loss.scale)
        node = maps.node_at(ctx.point, ctx.frame, feat_hw,
                            (kernel_h, kernel_w))
        row_T = maps.affinity_row(feat_T, node, loss.scale, loss.pool)
        row_S = maps.affinity_row(feat_S, node, loss.scale, loss.pool)
        extent = _frame_extent(ctx, tuple(row_T.shape), (kernel_h, kernel_w),
                               feat_hw=feat_hw)
        where = _level_name(index, len(levels), 'feature')
        grid = f'{row_T.shape[0]}x{row_T.shape[1]} nodes'
        low, high = _shared_range(row_T, row_S)
        _heatmap(fig, row[0], row_T, ctx, f'teacher {where}: {grid}',
                 extent, low, high, label='cosine affinity',
                 mark_node=True)
        _heatmap(fig, row[1], row_S, ctx, f'student {where}', extent, low,
                 high, label='cosine affinity', mark_node=True)
        diff = row_T - row_S
        _heatmap(fig, row[2], diff, ctx,
                 f'A_T - A_S, row MSE={float(diff.square().mean()):.3g}',
                 extent, *_symmetric(diff), cmap=CMAP_SIGNED,
                 label='difference', mark_node=True)
        shown[f'{index}_teacher'] = _numpy(row_T)
        shown[f'{index}_student'] = _numpy(row_S)
        shown[f'{index}_node'] = np.asarray(node)
    return [DistillFigure(loss_name, figure_to_rgb(fig), shown)]


@register_painter('ContextLoss')
def paint_context(loss_name: str, loss, inputs: Dict[str, object],
                  ctx: VisContext) -> List[DistillFigure]:
    """Relation row of the chosen position (where it finds its context),
    teacher vs student, and the row-wise KL of every position."""
    levels = maps.as_level_list(inputs['preds_S'], inputs['preds_T'])
    settings = f'tau={loss.tau:g}' + (
        f', pooled to {loss.pool[0]}x{loss.pool[1]}' if loss.pool else '')
    title = _loss_title(loss_name, loss, _loss_value(loss, inputs), settings)
    note = ('Relations of the position at +: softmax over positions j of '
            'cos(u_i, u_j) / tau, where it finds its context. Right: KL '
            'between the teacher\'s and student\'s rows for every position '
            'i; the loss is its mean.')
    fig, image_ax, panels = _new_figure(len(levels), 3, title, note)
    _show_image(image_ax, ctx, mark_node=True)
    shown = {}
    for index, (row, (feat_S, feat_T)) in enumerate(zip(panels, levels)):
        feat_hw = tuple(feat_T.shape[-2:])
        grid_hw = loss.pool or feat_hw
        # A pooled cell covers feat/pool positions (adaptive pooling: about).
        cell = (feat_hw[0] / grid_hw[0], feat_hw[1] / grid_hw[1])
        node = maps.node_at(ctx.point, ctx.frame, grid_hw)
        row_T = maps.relation_row(feat_T, node, loss.tau, loss.pool)
        row_S = maps.relation_row(feat_S, node, loss.tau, loss.pool)
        kl = maps.relation_kl_map(feat_S, feat_T, loss.tau, loss.pool)
        extent = _frame_extent(ctx, grid_hw, cell, feat_hw=feat_hw)
        where = _level_name(index, len(levels), 'feature')
        low, high = _shared_range(row_T, row_S, floor=0.0)
        _heatmap(fig, row[0], row_T, ctx,
                 f'teacher {where}: relations of +', extent, low, high,
                 label='R[i, j] (row sums to 1)', mark_node=True)
        _heatmap(fig, row[1], row_S, ctx, f'student {where}', extent, low,
                 high, label='R[i, j] (row sums to 1)', mark_node=True)
        _heatmap(fig, row[2], kl, ctx,
                 f'KL(R_T[i] || R_S[i]), mean={float(kl.mean()):.3g}',
                 extent, 0.0, None, cmap=CMAP_DIVERGENCE,
                 label='KL of row i')
        shown[f'{index}_teacher'] = _numpy(row_T)
        shown[f'{index}_student'] = _numpy(row_S)
        shown[f'{index}_kl'] = _numpy(kl)
    return [DistillFigure(loss_name, figure_to_rgb(fig), shown)]


@register_painter('BoundaryLoss')
def paint_boundary(loss_name: str, loss, inputs: Dict[str, object],
                   ctx: VisContext) -> List[DistillFigure]:
    """Label-free boundary maps of every backbone stage, teacher vs
    student, and their squared difference (the matching term)."""
    stages = maps.as_level_list(inputs['feats_S'], inputs['feats_T'])
    map_kwargs = dict(neighbourhood=loss.neighbourhood,
                      reduction=loss.reduction, normalize=loss.normalize,
                      eps=loss.eps)
    settings = (f'{loss.neighbourhood}-neighbourhood {loss.reduction}, '
                f'{loss.criterion}')
    title = _loss_title(loss_name, loss, _loss_value(loss, inputs), settings)
    note = ('Label-free boundary maps of each backbone stage: how much a '
            'position\'s features differ from its neighbours\' (1 - cos), '
            'min-max normalised per image. Right: squared difference at the '
            'size the loss compares them; its mean is the stage\'s term.')
    fig, image_ax, panels = _new_figure(len(stages), 3, title, note)
    _show_image(image_ax, ctx)
    shown = {}
    for index, (row, (feat_S, feat_T)) in enumerate(zip(panels, stages)):
        boundary = maps.stage_boundary_maps(feat_S, feat_T,
                                            resize_to=loss.resize_to,
                                            **map_kwargs)
        size_T = tuple(boundary['teacher'].shape)
        size_S = tuple(boundary['student'].shape)
        head = f'stage {index} ({_stride(ctx, size_T)})'
        _heatmap(fig, row[0], boundary['teacher'], ctx, f'teacher {head}',
                 _frame_extent(ctx, size_T), 0.0, 1.0, label='boundary')
        _heatmap(fig, row[1], boundary['student'], ctx,
                 f'student {head}', _frame_extent(ctx, size_S), 0.0, 1.0,
                 label='boundary')
        diff = boundary['squared_diff']
        _heatmap(fig, row[2], diff, ctx,
                 f'(B_S - B_T)^2, mean={float(diff.mean()):.3g}',
                 _frame_extent(ctx, tuple(diff.shape)), 0.0,
                 max(float(diff.max()), 1e-6), cmap=CMAP_DIVERGENCE,
                 label='squared difference')
        for key, value in boundary.items():
            shown[f'{index}_{key}'] = _numpy(value)
    return [DistillFigure(loss_name, figure_to_rgb(fig), shown)]


@register_painter('StructuralSimilarityLoss')
def paint_ssim(loss_name: str, loss, inputs: Dict[str, object],
               ctx: VisContext) -> List[DistillFigure]:
    """Per FPN level: the channel the student matches worst (teacher vs
    student, rescaled as the loss does) and the SSIM map averaged over
    channels."""
    levels = maps.as_level_list(inputs['preds_S'], inputs['preds_T'])
    settings = (f'window {loss.window_size}, sigma {loss.sigma:g}, '
                f'{loss.normalize} min-max')
    title = _loss_title(loss_name, loss, _loss_value(loss, inputs), settings)
    note = ('Per pyramid level: the channel with the lowest SSIM, teacher '
            'and student (after its connector) min-max rescaled as the loss '
            'does. Right: local SSIM averaged over channels (1: same local '
            'structure), where a full window fits (grey: no window).')
    fig, image_ax, panels = _new_figure(len(levels), 3, title, note)
    _show_image(image_ax, ctx)
    shown = {}
    for index, (row, (level_S, level_T)) in enumerate(zip(panels, levels)):
        level = maps.ssim_level_maps(level_S, level_T, loss.window_size,
                                     loss.sigma, loss.k1, loss.k2,
                                     loss.normalize)
        per_channel = level['ssim'].mean(dim=(1, 2))
        channel = int(per_channel.argmin())
        feat_hw = tuple(level['teacher'].shape[-2:])
        extent = _frame_extent(ctx, feat_hw)
        head = f'{_level_name(index, len(levels), "level")} ' \
            f'({_stride(ctx, feat_hw)}), channel {channel}'
        map_T, map_S = level['teacher'][channel], level['student'][channel]
        low, high = _shared_range(map_T, map_S)
        _heatmap(fig, row[0], map_T, ctx, f'teacher {head}', extent, low,
                 high, label='rescaled feature')
        _heatmap(fig, row[1], map_S, ctx,
                 f'student, SSIM={float(per_channel[channel]):.3g}', extent,
                 low, high, label='rescaled feature')
        # Valid positions only: the map starts half a window in.
        mean_ssim = level['ssim'].mean(0)
        half = (level['window'] - 1) / 2
        ssim_extent = _frame_extent(ctx, tuple(mean_ssim.shape),
                                    offset=(half, half), feat_hw=feat_hw)
        row[2].set_facecolor('0.85')
        _heatmap(fig, row[2], mean_ssim, ctx,
                 f'SSIM, 1-SSIM={float(level["loss"]):.3g} '
                 f'(w={level["window"]})', ssim_extent,
                 min(0.0, float(mean_ssim.min())), 1.0, cmap=CMAP_SSIM,
                 label='SSIM, channel mean')
        shown[f'{index}_ssim'] = _numpy(mean_ssim)
        shown[f'{index}_channel'] = np.asarray(channel)
        shown[f'{index}_loss'] = _numpy(level['loss'])
    return [DistillFigure(loss_name, figure_to_rgb(fig), shown)]


@register_painter('PixelWiseLoss')
def paint_pixel_wise(loss_name: str, loss, inputs: Dict[str, object],
                     ctx: VisContext) -> List[DistillFigure]:
    """Teacher and student class maps of the distilled logits and the
    per-pixel KL divergence."""
    logits_S, logits_T = inputs['preds_S'], inputs['preds_T']
    kl = maps.pixel_divergence_map(logits_S, logits_T, loss.tau)
    title = _loss_title(loss_name, loss, _loss_value(loss, inputs),
                        f'tau={loss.tau:g}')
    note = ('Class maps: argmax of the distilled logits, at their '
            'resolution. Right: KL divergence of the class distributions '
            'per pixel; the loss is its mean.')
    fig, image_ax, panels = _new_figure(1, 3, title, note)
    _show_image(image_ax, ctx)
    extent = _frame_extent(ctx, tuple(kl.shape))
    for ax, logits, who in ((panels[0][0], logits_T, 'teacher'),
                            (panels[0][1], logits_S, 'student')):
        _class_map(ax, logits[0].argmax(0), ctx, f'{who}: argmax of logits',
                   extent, legend='below')
    _heatmap(fig, panels[0][2], kl, ctx,
             f'per-pixel KL, mean={float(kl.mean()):.3g}', extent, 0.0,
             None, cmap=CMAP_DIVERGENCE, label='tau^2 KL(p_T || p_S)')
    return [DistillFigure(loss_name, figure_to_rgb(fig), dict(kl=_numpy(kl)))]


@register_painter('AdversarialGeneratorLoss')
def paint_adversarial(loss_name: str, loss, inputs: Dict[str, object],
                      ctx: VisContext) -> List[DistillFigure]:
    """The critic's scores over training, from the training log.

    One image's scores alone make no picture; without a log (``--scalars``)
    or without critic scores in it there is none.
    """
    if not ctx.scalars:
        return []
    title = f'{loss_name}: {type(loss).__name__}, the critic over training'
    if ctx.critic_scores is not None:
        title += ('\nthis checkpoint\'s critic on this image: '
                  f'D(teacher)={ctx.critic_scores[0]:.3g}, '
                  f'D(student)={ctx.critic_scores[1]:.3g}')
    figure = paint_critic_scores(ctx.scalars, title)
    return [] if figure is None else [
        DistillFigure(f'{loss_name}_critic', figure.image, figure.maps)
    ]


def paint_critic_scores(records: List[dict],
                        title: str) -> Optional[DistillFigure]:
    """D(teacher) and D(student) per iteration (the critic step's logged
    ``disc.d_score_T`` / ``disc.d_score_S``) and their gap, the critic's
    estimate of the Wasserstein distance (``disc.d_wasserstein``).

    Returns None when the log holds none of them.
    """
    scores = {key: series(records, key) for key in
              ('disc.d_score_T', 'disc.d_score_S', 'disc.d_wasserstein')}
    labels = {'disc.d_score_T': 'D(teacher)', 'disc.d_score_S': 'D(student)'}
    has_scores = any(len(scores[key][0]) for key in labels)
    has_gap = len(scores['disc.d_wasserstein'][0]) > 0
    if not has_scores and not has_gap:
        return None
    panels = int(has_scores) + int(has_gap)
    fig = Figure(figsize=(4.6 * panels, 3.9), dpi=DPI)
    axes = list(np.atleast_1d(fig.subplots(1, panels)))
    if has_scores:
        ax = axes.pop(0)
        for (key, label), colour in zip(labels.items(), ('C0', 'C1')):
            steps, values = scores[key]
            _smoothed_plot(ax, steps, values, label, colour)
        ax.set_title('critic scores (batch means)', fontsize=10)
        ax.set_xlabel('iteration')
        ax.legend(fontsize=8)
    if has_gap:
        ax = axes.pop(0)
        steps, values = scores['disc.d_wasserstein']
        _smoothed_plot(ax, steps, values, 'D(teacher) - D(student)', 'k')
        ax.axhline(0, color='grey', linewidth=0.5)
        ax.set_title('D(teacher) - D(student): Wasserstein estimate',
                     fontsize=10)
        ax.set_xlabel('iteration')
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return DistillFigure(
        'critic', figure_to_rgb(fig),
        {key: np.asarray(v) for key, (_, v) in scores.items()})


def _smoothed_plot(ax, steps, values, label, colour) -> None:
    """Raw values faint, their moving average on top (critic scores are
    per-batch and noisy)."""
    if not len(steps):
        return
    window = max(1, len(values) // 25)
    if window > 1:
        ax.plot(steps, values, color=colour, linewidth=0.6, alpha=0.3)
        ax.plot(steps, moving_average(values, window), color=colour,
                linewidth=1.4,
                label=f'{label} (mean of {window})')
    else:
        ax.plot(steps, values, color=colour, linewidth=1.2, label=label)


# ---------------------------------------------------------------------------
# Predictions


def _palette(ctx: VisContext, num_classes: int) -> np.ndarray:
    if len(ctx.palette) >= num_classes:
        return np.asarray(ctx.palette[:num_classes], dtype=np.uint8)
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (num_classes, 3), dtype=np.uint8)


def _class_map(ax, labels, ctx: VisContext, title: str, extent,
               legend: str = 'right') -> None:
    labels = _numpy(labels).astype(np.int64)
    num_classes = max(len(ctx.class_names), int(labels.max()) + 1)
    colours = _palette(ctx, num_classes)
    ax.imshow(colours[labels], extent=extent, interpolation='nearest')
    height, width = ctx.image.shape[:2]
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    present = sorted(set(labels.ravel().tolist()))
    names = [ctx.class_names[c] if c < len(ctx.class_names) else str(c)
             for c in present]
    handles = [Patch(color=colours[c] / 255, label=n)
               for c, n in zip(present, names)]
    if legend == 'right':
        ax.legend(handles=handles, fontsize=7, loc='upper left',
                  bbox_to_anchor=(1.0, 1.0), frameon=False)
    elif legend == 'below':
        ax.legend(handles=handles, fontsize=7, loc='upper center',
                  bbox_to_anchor=(0.5, 0.0), frameon=False, ncol=3,
                  handlelength=1, columnspacing=0.8)


def paint_predictions(ctx: VisContext, teacher_sample,
                      student_sample,
                      score_thr: float = 0.3) -> DistillFigure:
    """The input and the teacher's and student's predictions.

    Segmentation samples carry ``pred_sem_seg`` (drawn in the palette's
    colours), detection samples ``pred_instances`` (boxes above
    ``score_thr``, in input pixels).
    """
    fig = Figure(figsize=(3 * PANEL_INCHES + 1.8, PANEL_INCHES + 0.7),
                 dpi=DPI)
    axes = fig.subplots(1, 3, gridspec_kw=dict(wspace=0.55))
    _show_image(axes[0], ctx)
    shown = {}
    height, width = ctx.image.shape[:2]
    for ax, sample, who in ((axes[1], teacher_sample, 'teacher'),
                            (axes[2], student_sample, 'student')):
        if 'pred_sem_seg' in sample:
            labels = sample.pred_sem_seg.data[0]
            _class_map(ax, labels, ctx, f'{who} prediction',
                       (0, width, height, 0))
            shown[who] = _numpy(labels)
        else:
            boxes = _draw_boxes(ax, sample, ctx, score_thr)
            ax.set_title(f'{who}: boxes with score >= {score_thr:g}',
                         fontsize=9)
            shown[who] = boxes
    fig.suptitle('input and predictions', fontsize=11)
    fig.subplots_adjust(left=0.02, right=0.88, top=0.8, bottom=0.05)
    return DistillFigure('predictions', figure_to_rgb(fig), shown)


def _draw_boxes(ax, sample, ctx: VisContext, score_thr: float) -> np.ndarray:
    ax.imshow(ctx.image, extent=(0, ctx.image.shape[1], ctx.image.shape[0],
                                 0))
    ax.set_xticks([])
    ax.set_yticks([])
    instances = sample.pred_instances
    keep = instances.scores >= score_thr
    boxes = _numpy(instances.bboxes[keep])
    labels = _numpy(instances.labels[keep]).astype(np.int64)
    scores = _numpy(instances.scores[keep])
    # Predictions are in the original image's pixels; the shown image is
    # the resized network input.
    scale = np.ones(4, dtype=np.float32)
    if 'scale_factor' in sample:
        scale_w, scale_h = sample.scale_factor
        scale = np.array([scale_w, scale_h, scale_w, scale_h], np.float32)
    boxes = boxes * scale
    colours = _palette(ctx, max(len(ctx.class_names),
                                int(labels.max(initial=-1)) + 1))
    for (x1, y1, x2, y2), label, score in zip(boxes, labels, scores):
        colour = colours[label] / 255
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False,
                               edgecolor=colour, linewidth=1.5))
        name = ctx.class_names[label] if label < len(ctx.class_names) \
            else str(label)
        ax.text(x1, y1, f'{name} {score:.2f}', fontsize=6, color='white',
                va='bottom', bbox=dict(facecolor=colour, alpha=0.8, pad=0.5,
                                       linewidth=0))
    return boxes
