"""Command-line options of the loss benchmark (the driver and its worker
processes share them)."""
import argparse
import os.path as osp

from ..config_lists import RESULTS_DIR

CASES_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'cases')
DEFAULT_OUT = osp.join(RESULTS_DIR, 'losses.json')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark distillation losses (forward + backward).')
    parser.add_argument('--only', help='run one family, e.g. pair-wise')
    parser.add_argument(
        '--match', help='run only cases whose "family/label/size" matches '
        'this regular expression')
    parser.add_argument('--repeats', type=int, default=None,
                        help='measured steps per case (default 5, quick 1)')
    parser.add_argument('--warmup', type=int, default=None,
                        help='unmeasured steps first (default 1, quick 0)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:i]')
    parser.add_argument(
        '--threads', type=int, default=None,
        help='torch intra-op threads in each case (default: torch\'s own). '
        'On a machine shared with other work, 1 thread gives steadier '
        'timings: with 2 threads every parallel op waits for the slower one')
    parser.add_argument('--out', default=DEFAULT_OUT,
                        help='JSON output; the table goes to the same '
                        'name with .md')
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes, one step: a smoke test')
    parser.add_argument('--timeout', type=float, default=900,
                        help='seconds per case before it counts as failed')
    parser.add_argument('--cases-dir', default=CASES_DIR,
                        help='folder of the case modules')
    # Internal: the worker process's mode.
    parser.add_argument('--worker', nargs=2, metavar=('MODULE', 'INDEX'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 5
    if args.warmup is None:
        args.warmup = 0 if args.quick else 1
    if args.repeats < 1:
        parser.error('--repeats must be >= 1')
    args.cases_dir = osp.abspath(args.cases_dir)
    return args
