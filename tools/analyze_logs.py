"""Plot the distillation losses of one or several runs, per iteration.

Reads mmengine's ``scalars.json`` (the LocalVisBackend's log of every
logged value; a work dir selects its newest run) and draws one panel per
key: by default every distillation term (``distill.*``), the loss weights
set by ``DistillLossWeightScheduleHook`` (``distill_weight.*``), the
student's task losses (``student.*``) and the critic's terms (``disc.*``).
Runs are overlaid. A summary table (first, last, min, max, settled mean) is
printed. The losses in ``scalars.json`` are already mmengine's means over
the logger's window (``log_processor.window_size``, 10 iterations by
default); the loss weights are each iteration's own value.

mmseg's ``tools/analysis_tools/analyze_logs.py`` reads these logs too
(``--keys distill.loss_cwd ...``, all curves on one axis) when seaborn is
installed, which this package does not require.

Usage:
    python tools/analyze_logs.py LOG [LOG ...] [--out curves.png]
        [--keys 'distill.*' student.decode.loss_ce ...] [--legend A B]
        [--smooth N] [--ncols 3] [--title TEXT]
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from mmstructkd.visualization.curves import (format_table,  # noqa: E402
                                             plot_log_curves, summary_rows)
from mmstructkd.visualization.logs import (DEFAULT_KEY_PATTERNS,  # noqa: E402
                                           find_scalars, load_scalars,
                                           select_keys)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Plot distillation loss curves from mmengine '
        'scalars.json logs')
    parser.add_argument('logs', nargs='+',
                        help='scalars.json files or work dirs')
    parser.add_argument('--out', default='loss_curves.png',
                        help='output PNG (default: loss_curves.png)')
    parser.add_argument('--keys', nargs='+',
                        default=list(DEFAULT_KEY_PATTERNS),
                        help='keys or fnmatch patterns to plot (default: '
                        f'{" ".join(DEFAULT_KEY_PATTERNS)})')
    parser.add_argument('--legend', nargs='+',
                        help='one label per log (default: the run folder)')
    parser.add_argument('--smooth', type=int, default=1,
                        help='moving-average window drawn over the raw '
                        'values (1: raw only)')
    parser.add_argument('--ncols', type=int, default=3,
                        help='panels per row')
    parser.add_argument('--title', help='title of the figure')
    return parser.parse_args(argv)


def default_label(path: str) -> str:
    """``<work dir>/<timestamp>`` of a ``.../vis_data/scalars.json``."""
    parts = osp.normpath(osp.abspath(path)).split(os.sep)
    if len(parts) >= 4 and parts[-2] == 'vis_data':
        return f'{parts[-4]}/{parts[-3]}'
    return path


def main(argv=None):
    args = parse_args(argv)
    paths = [find_scalars(p) for p in args.logs]
    runs = [load_scalars(p) for p in paths]
    labels = args.legend or [default_label(p) for p in paths]
    if len(labels) != len(runs):
        raise SystemExit(f'--legend has {len(labels)} labels for '
                         f'{len(runs)} logs.')
    keys = select_keys(runs, args.keys)
    if not keys:
        available = sorted({k for records in runs for r in records
                            for k in r})
        raise SystemExit(f'none of {args.keys} is in the logs; they hold '
                         f'{available}.')
    fig, _ = plot_log_curves(runs, keys, labels, smooth=args.smooth,
                             ncols=args.ncols, title=args.title)
    out_dir = osp.dirname(args.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    fig.savefig(args.out)
    print(format_table(summary_rows(runs, keys, labels)))
    print(f'saved {len(keys)} curves to {args.out}')


if __name__ == '__main__':
    main()
