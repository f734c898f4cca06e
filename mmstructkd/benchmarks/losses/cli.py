"""The driver of the loss benchmark (``tools/benchmark_losses.py``): lists
the cases, runs each in a worker process, writes the results."""
import datetime
import json
import os
import os.path as osp
import re
import subprocess
import sys

from ..processes import failure_reason, parse_result, run_python
from .discovery import (case_modules, effective_params, family_of_module,
                        list_cases, size_label)
from .options import parse_args
from .report import add_ratios, markdown_table, merge_with_previous

WORKER_MODULE = 'mmstructkd.benchmarks.losses.worker'


def _run_worker(extra_args, timeout):
    return run_python(['-m', WORKER_MODULE] + list(extra_args), timeout)


def collect_cases(args):
    """(case rows to run, rows for modules that failed to load)."""
    to_run, failed = [], []
    for module_name in case_modules(args.cases_dir, args.only):
        try:
            cases, reason = list_cases(args.cases_dir, module_name), None
        except Exception as err:  # noqa: B902  (it fails its family only)
            cases, reason = None, f'{type(err).__name__}: {err}'
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
        proc = _run_worker(worker_args, args.timeout)
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


def main(argv=None):
    """Run the benchmark; returns the exit status (1 if a case failed)."""
    args = parse_args(argv)
    if args.worker:
        # Internal: the worker's own entry point.
        from .worker import main as worker_main
        worker_main(argv)
        return 0
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
        command=' '.join(['tools/benchmark_losses.py'] +
                         list(sys.argv[1:] if argv is None else argv)),
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
