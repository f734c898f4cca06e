"""The worker process: measures one case and answers with one marked JSON
line (``python -m mmstructkd.benchmarks.losses.worker --worker MODULE INDEX
...``).

Each case runs in a fresh worker, so its peak memory is its own.
"""
import os
import statistics
import time

from ..machine import machine_info, use_threads
from ..memory import MemoryMeter, is_out_of_memory
from ..processes import print_result
from .discovery import effective_params, estimate_elems, load_case_module
from .options import parse_args


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
    use_threads(args.threads)
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


def main(argv=None):
    args = parse_args(argv)
    worker_main(args)


if __name__ == '__main__':
    main()
