"""Command line of the overhead benchmark (``tools/benchmark_overhead.py``)."""
import argparse
import datetime
import json
import os
import os.path as osp
import sys
import traceback

import torch

from ...models.algorithms.frozen_teacher import TEACHER_PRECISIONS
from ..config_lists import OVERHEAD_SETS, RESULTS_DIR
from ..machine import load_average, machine_info, use_threads
from .memory_processes import MemoryProcesses
from .report import fmt_mb, fmt_ms, markdown
from .specs import CONDITIONS, STEP_DEFAULTS, resolve
from .steps import measure_time

DEFAULT_OUT_NAMES = {
    'toy': 'overhead',
    'model-zoo': 'overhead_model-zoo',
    'all': 'overhead_all'
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Per-step time and peak memory of distillation vs the '
        'student alone and the student plus a bare teacher forward.')
    parser.add_argument('--set', choices=sorted(OVERHEAD_SETS), default='toy',
                        help='which configs (default: toy)')
    parser.add_argument('--configs', nargs='+',
                        help='these configs instead of a --set')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'),
                        help='input size for every config (default: per '
                        'config, see the module docstring)')
    parser.add_argument('--batch', type=int,
                        help='default: the config\'s batch (toy, CUDA); on '
                        'CPU, 2 for model-zoo segmentation, 1 for detection')
    for name, what in (('steps', 'measured steps'),
                       ('warmup', 'unmeasured steps first')):
        full, cpu_zoo = STEP_DEFAULTS[name]
        parser.add_argument(f'--{name}', type=int,
                            help=f'{what} (default {full}; {cpu_zoo} for the '
                            'model zoo on CPU)')
    parser.add_argument(
        '--teacher-precision', nargs='+', choices=tuple(TEACHER_PRECISIONS),
        metavar='PRECISION',
        help='also time (b) with the teacher\'s forward in each of these '
        'precisions (model.teacher_precision: fp32, bf16, fp16 on CUDA) and '
        'report what the teacher forward costs, (b) - (a), in each, e.g. '
        '--teacher-precision fp32 bf16')
    parser.add_argument(
        '--amp', action='store_true',
        help='every step in mixed precision, as tools/train.py --amp: fp16 '
        'with loss scaling on CUDA, bf16 autocast on CPU')
    parser.add_argument('--threads', type=int,
                        help='torch intra-op threads (default: torch\'s)')
    parser.add_argument('--memory-steps', type=int, default=2,
                        help='steps in each memory process; 0 skips the '
                        'memory measurement')
    parser.add_argument('--memory-jobs', type=int, default=1,
                        help='memory processes run at once (they measure '
                        'memory only, never while timing)')
    parser.add_argument('--timeout', type=float, default=3600,
                        help='seconds per memory process')
    parser.add_argument('--out', help='JSON output (the table goes next to '
                        'it, .md); default: see the module docstring')
    args = parser.parse_args(argv)
    for name in ('steps', 'batch', 'memory_jobs'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    precisions = args.teacher_precision or []
    if len(set(precisions)) != len(precisions):
        parser.error(f'--teacher-precision lists a precision twice: '
                     f'{precisions}')
    if 'fp16' in precisions and args.device != 'cuda':
        parser.error('--teacher-precision fp16 is for CUDA teachers '
                     '(--device cuda); on a CPU compare fp32 and bf16.')
    return args


def default_out(args):
    if args.configs:
        return None
    suffix = '_cuda' if args.device == 'cuda' else ''
    return osp.join(RESULTS_DIR,
                    DEFAULT_OUT_NAMES[args.set] + suffix + '.json')


def main(argv=None):
    args = parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit(f'--device cuda: no CUDA device is available here (torch '
                 f'{torch.__version__}, CUDA build: {torch.version.cuda}). '
                 f'Run with --device cpu, or on a machine with a GPU.')
    use_threads(args.threads)
    command = ' '.join(['tools/benchmark_overhead.py'] +
                       list(sys.argv[1:] if argv is None else argv))
    info = dict(
        date=datetime.datetime.now().isoformat(timespec='seconds'),
        command=command,
        device=args.device,
        amp=args.amp,
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        memory_steps=args.memory_steps,
        memory_method=None,
        machine=machine_info(args.device),
        load_average_start=load_average())
    configs = args.configs or OVERHEAD_SETS[args.set]
    memory = MemoryProcesses(args) if args.memory_steps > 0 else None
    rows = []
    for number, config in enumerate(configs, 1):
        spec = resolve(config, args)
        print(f'[{number}/{len(configs)}] {spec["name"]}: batch '
              f'{spec["batch"]} x {spec["size"][0]}x{spec["size"][1]}, '
              f'{spec["steps"]} steps after {spec["warmup"]}',
              file=sys.stderr, flush=True)
        row = dict(spec, status='ok')
        try:
            row.update(measure_time(spec, args))
        except Exception as err:  # noqa: B902  (reported; the others run)
            traceback.print_exc()
            row.update(status='failed', reason=f'{type(err).__name__}: {err}')
            print(f'    failed: {row["reason"]}', file=sys.stderr)
            rows.append(row)
            continue
        print(f'    (a) {fmt_ms(row["median_s"]["a"])}, (b) '
              f'{fmt_ms(row["median_s"]["b"])}, (c) '
              f'{fmt_ms(row["median_s"]["c"])}, (c)/(b) '
              f'{row["c_over_b"]:.3f}', file=sys.stderr, flush=True)
        for precision, cost in row.get('teacher_precisions', {}).items():
            print(f'    teacher forward in {precision}: (b) - (a) '
                  f'{fmt_ms(cost["teacher_forward_s"])}', file=sys.stderr,
                  flush=True)
        if memory is not None:
            row.update(memory.measure(spec))
            print('    memory: ' + ', '.join(
                f'({k}) {fmt_mb(row["memory"][k])}' for k in CONDITIONS),
                  file=sys.stderr, flush=True)
        rows.append(row)
    info['load_average_end'] = load_average()
    methods = [r['memory'][k]['method'] for r in rows if 'memory' in r
               for k in CONDITIONS if r['memory'][k]['status'] == 'ok']
    if methods:
        info['memory_method'] = methods[0]
    table = markdown(rows, info)
    print(table)
    out = args.out or default_out(args)
    if out:
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with open(out, 'w') as f:
            json.dump(dict(info=info, rows=rows), f, indent=2)
        with open(osp.splitext(out)[0] + '.md', 'w') as f:
            f.write(table)
        print(f'Wrote {out} and its .md', file=sys.stderr)
    return rows



def exit_status(rows) -> int:
    """0 when every config was measured, else 1."""
    return 0 if all(r['status'] == 'ok' for r in rows) else 1
