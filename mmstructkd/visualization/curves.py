"""Loss curves of distillation runs (``tools/analyze_logs.py``).

One panel per logged key (every ``distill.*`` term, the loss weights of
``DistillLossWeightScheduleHook``, the student's task losses, the critic's
terms), the runs overlaid, so terms of very different magnitudes each get a
readable axis.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .logs import key_group, moving_average, series

__all__ = ['plot_log_curves', 'summary_rows', 'format_table']

PANEL_SIZE = (4.2, 2.9)


def plot_log_curves(
        runs: Sequence[Sequence[dict]],
        keys: Sequence[str],
        labels: Optional[Sequence[str]] = None,
        smooth: int = 1,
        ncols: int = 3,
        title: Optional[str] = None
) -> Tuple[Figure, Dict[Tuple[str, str], Tuple[np.ndarray, np.ndarray]]]:
    """Plot ``keys`` of every run against the iteration.

    Args:
        runs: the records of each run's ``scalars.json``.
        keys: the keys to plot, one panel each, in this order.
        labels: a legend label per run (default ``run 0``, ...).
        smooth: window of a trailing moving average drawn over the raw
            values (which are then drawn faint); 1 draws the raw values only.
        ncols: panels per row.
        title: title of the figure.

    Returns:
        The figure (with an Agg canvas, ready for ``savefig``) and the raw
        series plotted, ``(label, key) -> (iterations, values)``.
    """
    if not keys:
        raise ValueError('no keys to plot: none of the requested keys is in '
                         'the logs.')
    labels = list(labels) if labels else [f'run {i}' for i in range(len(runs))]
    if len(labels) != len(runs):
        raise ValueError(f'{len(labels)} legend labels for {len(runs)} runs.')
    ncols = max(1, min(ncols, len(keys)))
    nrows = math.ceil(len(keys) / ncols)
    fig = Figure(figsize=(PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows + 0.6),
                 dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    plotted = {}
    for ax, key in zip(axes, keys):
        # Loss weights are piecewise: drawn as steps, never smoothed.
        is_weight = key.startswith('distill_weight.')
        for index, (records, label) in enumerate(zip(runs, labels)):
            steps, values = series(records, key)
            if not len(steps):
                continue
            plotted[(label, key)] = (steps, values)
            colour = f'C{index % 10}'
            if is_weight:
                ax.plot(steps, values, color=colour, label=label,
                        drawstyle='steps-post', linewidth=1.4)
            elif smooth > 1:
                ax.plot(steps, values, color=colour, linewidth=0.6,
                        alpha=0.3)
                ax.plot(steps, moving_average(values, smooth), color=colour,
                        label=label, linewidth=1.3)
            else:
                ax.plot(steps, values, color=colour, label=label,
                        linewidth=1.0)
        ax.set_title(f'{key_group(key)}\n{key}', fontsize=9)
        ax.set_xlabel('iteration', fontsize=8)
        ax.tick_params(labelsize=7)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f'{v:.3g}'))
        ax.grid(alpha=0.3)
        if len(runs) > 1 and ax.lines:
            ax.legend(fontsize=7)
    for ax in axes[len(keys):]:
        ax.axis('off')
    if title:
        fig.suptitle(title, fontsize=11)
        # Keep the panels below the title.
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    else:
        fig.tight_layout()
    return fig, plotted


def summary_rows(runs: Sequence[Sequence[dict]], keys: Sequence[str],
                 labels: Sequence[str]) -> List[List[str]]:
    """One row per (run, key): iterations logged, first, last, min, max and
    mean of the last tenth of the run (the settled value)."""
    rows = [['run', 'key', 'points', 'first', 'last', 'min', 'max',
             'mean (last 10%)']]
    for records, label in zip(runs, labels):
        for key in keys:
            steps, values = series(records, key)
            if not len(values):
                continue
            tail = values[-max(1, len(values) // 10):]
            rows.append([label, key, str(len(values))] + [
                f'{v:.4g}' for v in (values[0], values[-1], values.min(),
                                     values.max(), tail.mean())
            ])
    return rows


def format_table(rows: List[List[str]]) -> str:
    """Left-aligned text columns, a rule under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ['  '.join(cell.ljust(w) for cell, w in zip(row, widths))
             for row in rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(line.rstrip() for line in lines)
