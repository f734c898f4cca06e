"""The canvas of the distillation pictures: figure layout and panels.

Layout shared by all pictures: the network input on the left (spanning the
rows), then one row per channel / level / stage with the teacher's map, the
student's map on the same colour scale, and their difference. Maps are drawn
over the image frame they cover (a stride-8 map over the whole input), so
rows of different resolutions line up with the image. Matplotlib only, with
no pyplot state: each figure has its own Agg canvas.
"""
import textwrap
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter
from torch import Tensor

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
        teachers: with several teachers, the names of those whose tensors
            the loss compares (named in its title); empty with one.
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
    teachers: Tuple[str, ...] = ()


@dataclass
class DistillFigure:
    """One picture: a file-name stem, its pixels and the maps it shows."""
    name: str
    image: np.ndarray
    maps: Dict[str, np.ndarray] = field(default_factory=dict)


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """Render a figure to an RGB uint8 array (H, W, 3)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def new_figure(rows: int, cols: int, title: str, note: str = ''):
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


def show_image(ax, ctx: VisContext, title: str = 'input',
               mark_node: bool = False) -> None:
    height, width = ctx.image.shape[:2]
    ax.imshow(ctx.image, extent=(0, width, height, 0))
    if mark_node:
        ax.plot(ctx.point[1], ctx.point[0], **NODE_MARKER)
    ax.set_title(f'{title} ({height}x{width})', fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def frame_extent(ctx: VisContext, grid_hw: Tuple[int, int],
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


def frame_to_image(ax, ctx: VisContext, title: str) -> None:
    """Show the image's area of a map panel (not the padding of the input
    frame), without ticks, under ``title``."""
    height, width = ctx.image.shape[:2]
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def heatmap(fig, ax, data, ctx: VisContext, title: str, extent,
            vmin=None, vmax=None, cmap=CMAP, label: str = '',
            mark_node: bool = False) -> None:
    data = to_numpy(data)
    shown = ax.imshow(data, extent=extent, vmin=vmin, vmax=vmax, cmap=cmap,
                      interpolation='nearest')
    frame_to_image(ax, ctx, title)
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


def to_numpy(data) -> np.ndarray:
    if isinstance(data, Tensor):
        return data.detach().float().cpu().numpy()
    return np.asarray(data)


def shared_range(*arrays, floor: Optional[float] = None):
    low = min(float(to_numpy(a).min()) for a in arrays)
    high = max(float(to_numpy(a).max()) for a in arrays)
    if floor is not None:
        low = min(low, floor)
    if high <= low:
        high = low + 1e-12
    return low, high


def symmetric_range(data) -> Tuple[float, float]:
    bound = max(float(np.abs(to_numpy(data)).max()), 1e-12)
    return -bound, bound


def loss_title(loss_name: str, loss, value: Optional[float],
               settings: str, teachers: Sequence[str] = ()) -> str:
    weight = getattr(loss, 'loss_weight', None)
    parts = [f'{loss_name}: {type(loss).__name__}']
    if settings:
        parts.append(f'({settings})')
    if teachers:
        parts.append(('vs teacher ' if len(teachers) == 1 else
                      'vs teachers ') + ', '.join(teachers))
    title = ' '.join(parts)
    if value is not None:
        title += f'\nloss on this image = {value:.4g}'
        if weight is not None:
            title += f' (weight {weight:g} included)'
    return title


def loss_value(loss, inputs: Dict[str, object]) -> Optional[float]:
    with torch.no_grad():
        value = loss(**inputs)
    return float(value) if isinstance(value, Tensor) and \
        value.numel() == 1 else None


def level_name(index: int, num_levels: int, what: str) -> str:
    return what if num_levels == 1 else f'{what} {index}'


def stride_label(ctx: VisContext, feat_hw: Tuple[int, int]) -> str:
    stride = ctx.frame[0] / feat_hw[0]
    return f'stride {stride:g}'


def loss_figure(loss_name: str, loss, inputs: Dict[str, object],
                ctx: VisContext, settings: str, note: str, rows: int,
                mark_node: bool = False):
    """The figure of one loss: titled with the loss, its ``settings``, the
    teachers it compares with (``ctx.teachers``) and its value on this
    image, the input on the left (the node marked when asked), the
    ``note`` and ``rows`` rows of three map panels.

    Returns:
        ``(figure, panels)``, ``panels[row][column]``.
    """
    title = loss_title(loss_name, loss, loss_value(loss, inputs), settings,
                       ctx.teachers)
    fig, image_ax, panels = new_figure(rows, 3, title, note)
    show_image(image_ax, ctx, mark_node=mark_node)
    return fig, panels


def paint_rows(loss_name: str, loss, inputs: Dict[str, object],
               ctx: VisContext, settings: str, note: str, items: Sequence,
               paint_row, mark_node: bool = False) -> List['DistillFigure']:
    """One figure of a loss with a row of panels per item (a backbone
    stage, an FPN level).

    ``items`` are ``(student, teacher)`` pairs; ``paint_row(fig, row,
    index, student, teacher)`` draws ``row`` (three panels) and returns the
    arrays it showed; they are kept as ``'{index}_{key}'``.
    """
    fig, panels = loss_figure(loss_name, loss, inputs, ctx, settings, note,
                              len(items), mark_node=mark_node)
    shown = {}
    for index, (row, item) in enumerate(zip(panels, items)):
        for key, value in paint_row(fig, row, index, *item).items():
            shown[f'{index}_{key}'] = value
    return [DistillFigure(loss_name, figure_to_rgb(fig), shown)]


def teacher_student_panels(fig, row, ctx: VisContext, map_T, map_S,
                           title_T: str, title_S: str, extent, label: str,
                           floor: Optional[float] = None,
                           mark_node: bool = False) -> None:
    """The teacher's and the student's map in the first two panels of a
    row, on one colour scale (from ``floor`` at least, when given)."""
    low, high = shared_range(map_T, map_S, floor=floor)
    for ax, data, title in ((row[0], map_T, title_T),
                            (row[1], map_S, title_S)):
        heatmap(fig, ax, data, ctx, title, extent, low, high, label=label,
                mark_node=mark_node)


def class_palette(ctx: VisContext, num_classes: int) -> np.ndarray:
    if len(ctx.palette) >= num_classes:
        return np.asarray(ctx.palette[:num_classes], dtype=np.uint8)
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (num_classes, 3), dtype=np.uint8)


def class_map(ax, labels, ctx: VisContext, title: str, extent,
              legend: str = 'right') -> None:
    labels = to_numpy(labels).astype(np.int64)
    num_classes = max(len(ctx.class_names), int(labels.max()) + 1)
    colours = class_palette(ctx, num_classes)
    ax.imshow(colours[labels], extent=extent, interpolation='nearest')
    frame_to_image(ax, ctx, title)
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
