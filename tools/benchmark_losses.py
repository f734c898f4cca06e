#!/usr/bin/env python
"""Time and peak memory of the distillation losses, one forward+backward step.

Case modules live in ``tools/loss_benchmarks/<family>.py``. Each defines
``CASES`` (a list of dicts, one per table row) and the ``build_*`` functions
they name::

    def build_ours(device: str, **params) -> (loss_fn, inputs)
    CASES = [dict(family='pair-wise', label='full-res (ours)',
                  build='build_ours', params=dict(C=256, H=64, W=128),
                  reference='naive'),
             dict(family='pair-wise', label='naive', key='naive',
                  build='build_naive', params=dict(C=256, H=64, W=128),
                  max_elems=3 * 10**8)]

Optional case keys: ``key`` (what other rows name as their ``reference``;
the reference row is the one of the same family with that key and the same
params), ``reference``, ``max_elems`` (skip the case, reported as skipped,
when its estimated element count is larger: the estimate is ``elems`` in the
case, else ``estimate_elems(build, params)`` of the module, else the product
of the integer params) and ``quick_params`` (sizes for ``--quick``; without
them ``--quick`` divides H, W and every C* param by 8, minimum 4).

Every case runs in a fresh subprocess, so its peak memory is its own. The
worker builds the inputs, notes the memory in use, runs ``--warmup`` +
``--repeats`` steps (``loss_fn(*inputs).backward()``), and reports the
median step time and the peak memory beyond the inputs (CPU: peak RSS minus
RSS after building, using /proc/self/clear_refs to reset the peak where
Linux allows, else ``getrusage``; CUDA: ``max_memory_allocated`` minus
``memory_allocated`` after building). So the student's gradient counts.

Results go to ``--out`` (default ``benchmarks/results/losses.json``; rows of
families not run this time are kept) and a Markdown table is printed and
written next to it (``.md``). Timings on a machine shared with other work
are noisy: the JSON records the 1-minute load average before and after each
case, and ``--threads 1`` gives steadier numbers there (with more threads
than free cores, every parallel op waits for its slowest thread).

Examples::

    python tools/benchmark_losses.py --only pair-wise
    python tools/benchmark_losses.py --only pair-wise --threads 1 \
        --out benchmarks/results/losses-1thread.json
    python tools/benchmark_losses.py --quick --repeats 1 --out /tmp/x.json
"""
import argparse
import datetime
import glob
import importlib.util
import json
import math
import os
import os.path as osp
import re
import statistics
import subprocess
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
from benchmark_utils import (MemoryMeter, failure_reason,  # noqa: E402
                             is_out_of_memory, machine_info, parse_result,
                             print_result, run_python)

CASES_DIR = osp.join(REPO_ROOT, 'tools', 'loss_benchmarks')
DEFAULT_OUT = osp.join(REPO_ROOT, 'benchmarks', 'results', 'losses.json')
QUICK_DIVISOR = 8
QUICK_MINIMUM = 4


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
    # Internal: the subprocess modes.
    parser.add_argument('--list-cases', metavar='MODULE',
                        help=argparse.SUPPRESS)
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


# ----------------------------------------------------------- discovery ---
def family_of_module(module_name):
    return module_name.replace('_', '-')


def case_modules(cases_dir, only=None):
    """Names of the case modules; with ``only``, the one it names if any."""
    names = sorted(
        osp.splitext(osp.basename(path))[0]
        for path in glob.glob(osp.join(cases_dir, '*.py'))
        if not osp.basename(path).startswith('_'))
    if only is not None:
        named = [n for n in names if family_of_module(n) == only]
        # A module may hold a family not named after it: then ask them all.
        return named or names
    return names


def load_case_module(cases_dir, module_name):
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    path = osp.join(cases_dir, module_name + '.py')
    spec = importlib.util.spec_from_file_location(
        f'loss_benchmarks.{module_name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def effective_params(case, quick):
    params = dict(case.get('params', {}))
    if not quick:
        return params
    if 'quick_params' in case:
        return dict(case['quick_params'])
    for name, value in params.items():
        if isinstance(value, int) and not isinstance(value, bool) and (
                name in ('H', 'W') or name.startswith('C')):
            params[name] = max(QUICK_MINIMUM, value // QUICK_DIVISOR)
    return params


def size_label(params):
    """'N=1, C=256, 64x128' from the params."""
    parts = [f'{k}={v}' for k, v in params.items() if k not in ('H', 'W')]
    if 'H' in params and 'W' in params:
        parts.append(f'{params["H"]}x{params["W"]}')
    return ', '.join(parts)


# -------------------------------------------------------------- worker ---
def estimate_elems(module, case, params):
    if 'elems' in case:
        return int(case['elems'])
    if hasattr(module, 'estimate_elems'):
        return int(module.estimate_elems(case['build'], params))
    ints = [v for v in params.values()
            if isinstance(v, int) and not isinstance(v, bool)]
    return math.prod(ints) if ints else 0


def run_worker(module_name, index, args):
    """Measure one case; returns the result dict (printed by the caller)."""
    module = load_case_module(args.cases_dir, module_name)
    case = module.CASES[index]
    params = effective_params(case, args.quick)
    result = dict(status='ok', load_before=os.getloadavg()[0])
    limit = case.get('max_elems')
    if limit is not None:
        elems = estimate_elems(module, case, params)
        if elems > limit:
            return dict(result, status='skipped', reason=(
                f'needs ~{elems:.3g} elements, over its guard of '
                f'{limit:.3g} (max_elems)'))
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    sync = (lambda: torch.cuda.synchronize(args.device)) \
        if args.device.startswith('cuda') else (lambda: None)
    build = getattr(module, case['build'])
    try:
        loss_fn, inputs = build(args.device, **params)
    except Exception as err:  # noqa: B902  (only out-of-memory is a skip)
        if not is_out_of_memory(err, torch):
            raise
        return dict(result, status='skipped',
                    reason=f'out of memory building inputs: {err}')
    meter = MemoryMeter(args.device, torch)
    meter.start()
    times = []
    try:
        for step in range(args.warmup + args.repeats):
            for tensor in inputs:
                tensor.grad = None
            sync()
            start = time.perf_counter()
            loss = loss_fn(*inputs)
            loss.backward()
            sync()
            if step >= args.warmup:
                times.append(time.perf_counter() - start)
            value = float(loss.detach())
            del loss
    except Exception as err:  # noqa: B902
        if not is_out_of_memory(err, torch):
            raise
        return dict(result, status='skipped',
                    reason=f'out of memory during a step: {err}')
    peak = meter.peak_beyond_baseline()
    input_bytes = sum(t.numel() * t.element_size() for t in inputs)
    return dict(
        result,
        median_s=statistics.median(times),
        times_s=times,
        peak_mb=peak / 2**20,
        inputs_mb=input_bytes / 2**20,
        memory_method=meter.method,
        loss_value=value,
        load_after=os.getloadavg()[0],
        machine=machine_info(args.device))


def worker_main(args):
    module_name, index = args.worker[0], int(args.worker[1])
    result = run_worker(module_name, index, args)
    print_result(result)


def list_cases_main(args):
    module = load_case_module(args.cases_dir, args.list_cases)
    cases = [dict(case) for case in module.CASES]
    print_result(cases, default=repr)


# -------------------------------------------------------------- parent ---
def _subprocess(extra_args, timeout):
    return run_python(osp.abspath(__file__), extra_args, REPO_ROOT, timeout)


def collect_cases(args):
    """(case rows to run, rows for modules that failed to load)."""
    to_run, failed = [], []
    for module_name in case_modules(args.cases_dir, args.only):
        try:
            proc = _subprocess([
                '--list-cases', module_name, '--cases-dir', args.cases_dir
            ], args.timeout)
            cases = parse_result(proc) if proc.returncode == 0 else None
            reason = failure_reason(proc)
        except subprocess.TimeoutExpired:
            cases, reason = None, 'timed out listing cases'
        family = family_of_module(module_name)
        if cases is None:
            if args.only is None or args.only == family:
                failed.append(dict(
                    family=family, label='(all cases)', size='',
                    status='failed', reason=f'{module_name}.py: {reason}'))
            continue
        for index, case in enumerate(cases):
            if args.only is not None and case.get('family') != args.only:
                continue
            params = effective_params(case, args.quick)
            row = dict(
                family=case.get('family', family),
                label=case.get('label', case.get('build')),
                key=case.get('key'),
                reference=case.get('reference'),
                build=case.get('build'),
                params=params,
                size=size_label(params),
                module=module_name,
                index=index)
            tag = f'{row["family"]}/{row["label"]}/{row["size"]}'
            if args.match and not re.search(args.match, tag):
                continue
            to_run.append(row)
    return to_run, failed


def run_case(row, args):
    worker_args = [
        '--worker', row['module'], str(row['index']), '--device',
        args.device, '--repeats', str(args.repeats), '--warmup',
        str(args.warmup), '--cases-dir', args.cases_dir
    ] + (['--quick'] if args.quick else []) + (
        ['--threads', str(args.threads)] if args.threads else [])
    try:
        proc = _subprocess(worker_args, args.timeout)
    except subprocess.TimeoutExpired:
        return dict(status='failed',
                    reason=f'timed out after {args.timeout:.0f} s')
    result = parse_result(proc)
    if proc.returncode == -9:
        # The kernel's out-of-memory killer: the case does not fit here.
        return dict(status='skipped', reason=failure_reason(proc))
    if proc.returncode != 0 or result is None:
        return dict(status='failed', reason=failure_reason(proc))
    return result


def add_ratios(rows):
    """Speed and memory ratios of each row against its reference row."""
    for row in rows:
        ref_key = row.get('reference')
        if not ref_key:
            continue
        candidates = [
            r for r in rows if r.get('family') == row['family']
            and r.get('key') == ref_key
        ]
        same_size = [r for r in candidates if r.get('params') == row.get(
            'params')]
        ref = (same_size or candidates or [None])[0]
        if ref is None:
            row['ratio_note'] = f'no reference row {ref_key!r}'
        elif ref.get('status') != 'ok':
            row['ratio_note'] = f'reference {ref.get("status")}'
        elif row.get('status') == 'ok':
            row['speedup_vs_reference'] = ref['median_s'] / row['median_s']
            row['memory_ratio_vs_reference'] = (
                ref['peak_mb'] / row['peak_mb']
                if row['peak_mb'] > 0 else math.inf)


def _ratio(ratio, better, worse):
    """'3.2x faster' for 3.2, '1.5x slower' for 1/1.5."""
    if ratio >= 1:
        return f'{ratio:.1f}x {better}'
    return f'{1 / ratio:.1f}x {worse}' if ratio > 0 else f'inf {worse}'


def markdown_table(rows):
    lines = [
        '| family | case | size | median s | peak MB | vs reference |',
        '|---|---|---|---:|---:|---|'
    ]
    for row in rows:
        if row.get('status') == 'ok':
            median = f'{row["median_s"]:.4g}'
            peak = f'{row["peak_mb"]:.1f}'
        else:
            median = peak = '-'
        if 'speedup_vs_reference' in row:
            speed = _ratio(row['speedup_vs_reference'], 'faster', 'slower')
            memory = _ratio(row['memory_ratio_vs_reference'], 'less', 'more')
            versus = f'{speed}, {memory} memory than {row["reference"]}'
        elif row.get('status') != 'ok':
            versus = f'{row["status"]}: {row.get("reason", "")}'
        else:
            versus = row.get('ratio_note', '')
        versus = versus.replace('|', '/')
        lines.append(f'| {row["family"]} | {row["label"]} | {row["size"]} '
                     f'| {median} | {peak} | {versus} |')
    return '\n'.join(lines)


def merge_with_previous(path, rows, run_id, run_info, families):
    """Keep the rows of families not run this time."""
    runs = {run_id: run_info}
    kept = []
    if osp.exists(path):
        try:
            with open(path) as f:
                previous = json.load(f)
            kept = [r for r in previous.get('rows', [])
                    if r.get('family') not in families]
            for r in kept:
                if r.get('run') in previous.get('runs', {}):
                    runs[r['run']] = previous['runs'][r['run']]
        except (OSError, ValueError):
            kept = []
    return kept + rows, runs


def main(args):
    run_id = datetime.datetime.now().isoformat(timespec='seconds')
    to_run, failed = collect_cases(args)
    rows = list(failed)
    machine = None
    for number, row in enumerate(to_run, 1):
        print(f'[{number}/{len(to_run)}] {row["family"]} / {row["label"]} / '
              f'{row["size"]} ...', file=sys.stderr, flush=True)
        result = run_case(row, args)
        machine = result.pop('machine', machine)
        row.update(result)
        if row['status'] == 'ok':
            print(f'    {row["median_s"]:.4g} s, {row["peak_mb"]:.1f} MB',
                  file=sys.stderr, flush=True)
        else:
            print(f'    {row["status"]}: {row.get("reason")}',
                  file=sys.stderr, flush=True)
        rows.append(row)
    for row in rows:
        row['run'] = run_id
    run_info = dict(
        date=run_id,
        command=' '.join(['tools/benchmark_losses.py'] + sys.argv[1:]),
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads,
        quick=args.quick,
        machine=machine)
    families = {row['family'] for row in rows}
    all_rows, runs = merge_with_previous(args.out, rows, run_id, run_info,
                                         families)
    add_ratios(all_rows)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(runs=runs, rows=all_rows), f, indent=2)
    table = markdown_table(all_rows)
    loads = [r[k] for r in rows for k in ('load_before', 'load_after')
             if k in r]
    load = (f'1-minute load average during the run: {min(loads):.1f} to '
            f'{max(loads):.1f}.\n' if loads else '')
    earlier = ('Rows of other families come from earlier runs (see `runs` '
               'in the JSON).\n' if len(runs) > 1 else '')
    header = ('Loss benchmark: median time of one forward+backward step and '
              'peak memory beyond the inputs.\n'
              f'Latest run: {run_id}, `{run_info["command"]}`, '
              f'{json.dumps(machine)}\n{load}{earlier}\n')
    with open(osp.splitext(args.out)[0] + '.md', 'w') as f:
        f.write(header + table + '\n')
    print(table)
    return 0 if all(r.get('status') != 'failed' for r in rows) else 1


if __name__ == '__main__':
    cli_args = parse_args()
    if cli_args.worker:
        worker_main(cli_args)
    elif cli_args.list_cases:
        list_cases_main(cli_args)
    else:
        sys.exit(main(cli_args))
