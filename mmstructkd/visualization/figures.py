"""Figures of what each distillation loss compares, teacher next to student.

One *painter* per loss type (the registered class name of the loss) turns
the tensors the distiller feeds that loss into one picture (sometimes none):
:func:`paint_loss` looks the painter up. The maps come from
:mod:`mmstructkd.visualization.distill_maps` and are laid out on the canvas
of :mod:`mmstructkd.visualization.panels`; the painters return RGB arrays,
which ``tools/visualize_distill.py`` hands to mmengine's visualizer
backends.
"""
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from matplotlib.figure import Figure

from . import distill_maps as maps
from .logs import moving_average, series
from .panels import (CMAP_DIVERGENCE, CMAP_SIGNED, CMAP_SSIM, DPI,
                     DistillFigure, VisContext, class_map, figure_to_rgb,
                     frame_extent, heatmap, level_name, loss_figure,
                     paint_rows, stride_label, symmetric_range,
                     teacher_student_panels, to_numpy)

__all__ = [
    'PAINTERS', 'register_painter', 'paint_loss', 'paint_critic_scores'
]

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
    if len(levels) == 1:
        which = (f'the {len(rows)} of {levels[0][1].shape[1]} channels '
                 f'whose teacher and student distributions differ most')
    else:
        which = ('per pyramid level, the channel whose teacher and student '
                 'distributions differ most')
    note = ('Each channel is a distribution over positions (softmax of '
            f'map / tau). Rows: {which} (KL, largest first). Teacher and '
            'student share a colour scale; right: their difference.')
    fig, panels = loss_figure(loss_name, loss, inputs, ctx,
                              f'tau={loss.tau:g}', note, len(rows))
    shown = {}
    for row, (index, channel, divergence) in zip(panels, rows):
        level_S, level_T = levels[index]
        p_T = maps.channel_distributions(level_T, loss.tau)[channel]
        p_S = maps.channel_distributions(level_S, loss.tau)[channel]
        extent = frame_extent(ctx, tuple(p_T.shape))
        name = _channel_name(channel, level_T.shape[1], ctx)
        where = level_name(index, len(levels), 'level')
        head = f'{name}' if len(levels) == 1 else f'{where}, {name}'
        teacher_student_panels(fig, row, ctx, p_T, p_S, f'teacher: {head}',
                               f'student: {head}', extent,
                               'p over positions')
        diff = p_T - p_S
        heatmap(fig, row[2], diff, ctx,
                f'p_T - p_S, KL={divergence:.3g}', extent,
                *symmetric_range(diff), cmap=CMAP_SIGNED, label='difference')
        shown[f'{index}_{channel}_teacher'] = to_numpy(p_T)
        shown[f'{index}_{channel}_student'] = to_numpy(p_S)
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
    note = ('Cosine affinity of the node at + with every node. The loss is '
            'the mean squared difference of the whole affinity matrices; '
            'this is their row for the node at +. Pick it with --node Y X.')

    def paint_level(fig, row, index, feat_S, feat_T):
        feat_hw = tuple(feat_T.shape[-2:])
        kernel_h, kernel_w, _, _ = maps.node_grid(*feat_hw, loss.scale)
        node = maps.node_at(ctx.point, ctx.frame, feat_hw,
                            (kernel_h, kernel_w))
        row_T = maps.affinity_row(feat_T, node, loss.scale, loss.pool)
        row_S = maps.affinity_row(feat_S, node, loss.scale, loss.pool)
        extent = frame_extent(ctx, tuple(row_T.shape), (kernel_h, kernel_w),
                              feat_hw=feat_hw)
        where = level_name(index, len(levels), 'feature')
        grid = f'{row_T.shape[0]}x{row_T.shape[1]} nodes'
        teacher_student_panels(fig, row, ctx, row_T, row_S,
                               f'teacher {where}: {grid}',
                               f'student {where}', extent,
                               'cosine affinity', mark_node=True)
        diff = row_T - row_S
        heatmap(fig, row[2], diff, ctx,
                f'A_T - A_S, row MSE={float(diff.square().mean()):.3g}',
                extent, *symmetric_range(diff), cmap=CMAP_SIGNED,
                label='difference', mark_node=True)
        return dict(teacher=to_numpy(row_T), student=to_numpy(row_S),
                    node=np.asarray(node))

    return paint_rows(loss_name, loss, inputs, ctx, nodes, note, levels,
                      paint_level, mark_node=True)


@register_painter('ContextLoss')
def paint_context(loss_name: str, loss, inputs: Dict[str, object],
                  ctx: VisContext) -> List[DistillFigure]:
    """Relation row of the chosen position (where it finds its context),
    teacher vs student, and the row-wise KL of every position."""
    levels = maps.as_level_list(inputs['preds_S'], inputs['preds_T'])
    settings = f'tau={loss.tau:g}' + (
        f', pooled to {loss.pool[0]}x{loss.pool[1]}' if loss.pool else '')
    note = ('Relations of the position at +: softmax over positions j of '
            'cos(u_i, u_j) / tau, where it finds its context. Right: KL '
            'between the teacher\'s and student\'s rows for every position '
            'i; the loss is its mean.')

    def paint_level(fig, row, index, feat_S, feat_T):
        feat_hw = tuple(feat_T.shape[-2:])
        grid_hw = loss.pool or feat_hw
        # A pooled cell covers feat/pool positions (adaptive pooling: about).
        cell = (feat_hw[0] / grid_hw[0], feat_hw[1] / grid_hw[1])
        node = maps.node_at(ctx.point, ctx.frame, grid_hw)
        row_T = maps.relation_row(feat_T, node, loss.tau, loss.pool)
        row_S = maps.relation_row(feat_S, node, loss.tau, loss.pool)
        kl = maps.relation_kl_map(feat_S, feat_T, loss.tau, loss.pool)
        extent = frame_extent(ctx, grid_hw, cell, feat_hw=feat_hw)
        where = level_name(index, len(levels), 'feature')
        teacher_student_panels(fig, row, ctx, row_T, row_S,
                               f'teacher {where}: relations of +',
                               f'student {where}', extent,
                               'R[i, j] (row sums to 1)', floor=0.0,
                               mark_node=True)
        heatmap(fig, row[2], kl, ctx,
                f'KL(R_T[i] || R_S[i]), mean={float(kl.mean()):.3g}',
                extent, 0.0, None, cmap=CMAP_DIVERGENCE,
                label='KL of row i')
        return dict(teacher=to_numpy(row_T), student=to_numpy(row_S),
                    kl=to_numpy(kl))

    return paint_rows(loss_name, loss, inputs, ctx, settings, note, levels,
                      paint_level, mark_node=True)


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
    note = ('Label-free boundary maps of each backbone stage: how much a '
            'position\'s features differ from its neighbours\' (1 - cos), '
            'min-max normalised per image. Right: squared difference at the '
            'size the loss compares them; its mean is the stage\'s term.')

    def paint_stage(fig, row, index, feat_S, feat_T):
        boundary = maps.stage_boundary_maps(feat_S, feat_T,
                                            resize_to=loss.resize_to,
                                            **map_kwargs)
        size_T = tuple(boundary['teacher'].shape)
        size_S = tuple(boundary['student'].shape)
        head = f'stage {index} ({stride_label(ctx, size_T)})'
        heatmap(fig, row[0], boundary['teacher'], ctx, f'teacher {head}',
                frame_extent(ctx, size_T), 0.0, 1.0, label='boundary')
        heatmap(fig, row[1], boundary['student'], ctx,
                f'student {head}', frame_extent(ctx, size_S), 0.0, 1.0,
                label='boundary')
        diff = boundary['squared_diff']
        heatmap(fig, row[2], diff, ctx,
                f'(B_S - B_T)^2, mean={float(diff.mean()):.3g}',
                frame_extent(ctx, tuple(diff.shape)), 0.0,
                max(float(diff.max()), 1e-6), cmap=CMAP_DIVERGENCE,
                label='squared difference')
        return {key: to_numpy(value) for key, value in boundary.items()}

    return paint_rows(loss_name, loss, inputs, ctx, settings, note, stages,
                      paint_stage)


@register_painter('StructuralSimilarityLoss')
def paint_ssim(loss_name: str, loss, inputs: Dict[str, object],
               ctx: VisContext) -> List[DistillFigure]:
    """Per FPN level: the channel the student matches worst (teacher vs
    student, rescaled as the loss does) and the SSIM map averaged over
    channels."""
    levels = maps.as_level_list(inputs['preds_S'], inputs['preds_T'])
    settings = (f'window {loss.window_size}, sigma {loss.sigma:g}, '
                f'{loss.normalize} min-max')
    note = ('Per pyramid level: the channel with the lowest SSIM, teacher '
            'and student (after its connector) min-max rescaled as the loss '
            'does. Right: local SSIM averaged over channels (1: same local '
            'structure), where a full window fits (grey: no window).')

    def paint_level(fig, row, index, level_S, level_T):
        level = maps.ssim_level_maps(
            level_S, level_T, loss.normalize, window_size=loss.window_size,
            sigma=loss.sigma, k1=loss.k1, k2=loss.k2)
        per_channel = level['ssim'].mean(dim=(1, 2))
        channel = int(per_channel.argmin())
        feat_hw = tuple(level['teacher'].shape[-2:])
        extent = frame_extent(ctx, feat_hw)
        head = f'{level_name(index, len(levels), "level")} ' \
            f'({stride_label(ctx, feat_hw)}), channel {channel}'
        map_T, map_S = level['teacher'][channel], level['student'][channel]
        teacher_student_panels(
            fig, row, ctx, map_T, map_S, f'teacher {head}',
            f'student, SSIM={float(per_channel[channel]):.3g}', extent,
            'rescaled feature')
        # Valid positions only: the map starts half a window in.
        mean_ssim = level['ssim'].mean(0)
        half = (level['window'] - 1) / 2
        ssim_extent = frame_extent(ctx, tuple(mean_ssim.shape),
                                   offset=(half, half), feat_hw=feat_hw)
        row[2].set_facecolor('0.85')
        heatmap(fig, row[2], mean_ssim, ctx,
                f'SSIM, 1-SSIM={float(level["loss"]):.3g} '
                f'(w={level["window"]})', ssim_extent,
                min(0.0, float(mean_ssim.min())), 1.0, cmap=CMAP_SSIM,
                label='SSIM, channel mean')
        return dict(ssim=to_numpy(mean_ssim), channel=np.asarray(channel),
                    loss=to_numpy(level['loss']))

    return paint_rows(loss_name, loss, inputs, ctx, settings, note, levels,
                      paint_level)


@register_painter('PixelWiseLoss')
def paint_pixel_wise(loss_name: str, loss, inputs: Dict[str, object],
                     ctx: VisContext) -> List[DistillFigure]:
    """Teacher and student class maps of the distilled logits and the
    per-pixel KL divergence."""
    logits_S, logits_T = inputs['preds_S'], inputs['preds_T']
    kl = maps.pixel_divergence_map(logits_S, logits_T, loss.tau)
    note = ('Class maps: argmax of the distilled logits, at their '
            'resolution. Right: KL divergence of the class distributions '
            'per pixel; the loss is its mean.')
    fig, panels = loss_figure(loss_name, loss, inputs, ctx,
                              f'tau={loss.tau:g}', note, 1)
    extent = frame_extent(ctx, tuple(kl.shape))
    for ax, logits, who in ((panels[0][0], logits_T, 'teacher'),
                            (panels[0][1], logits_S, 'student')):
        class_map(ax, logits[0].argmax(0), ctx, f'{who}: argmax of logits',
                  extent, legend='below')
    heatmap(fig, panels[0][2], kl, ctx,
            f'per-pixel KL, mean={float(kl.mean()):.3g}', extent, 0.0,
            None, cmap=CMAP_DIVERGENCE, label='tau^2 KL(p_T || p_S)')
    return [DistillFigure(loss_name, figure_to_rgb(fig), dict(kl=to_numpy(kl)))]


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
