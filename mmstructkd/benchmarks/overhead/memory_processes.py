"""Peak memory of each step kind, each in a fresh process of its own.

Peak memory is process-wide: see :mod:`mmstructkd.benchmarks.memory`.
"""
import traceback
from concurrent.futures import ThreadPoolExecutor

import torch

from ..machine import use_threads
from ..memory import MemoryMeter, is_out_of_memory
from .specs import CONDITIONS
from .steps import build, make_steps


def tensor_bytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors)


def measure_memory(spec, condition, device, num_steps):
    """Peak memory of ``num_steps`` steps of one condition, beyond the
    models and inputs (in a fresh process: see the module docstring)."""
    model, wrappers, make_batch = build(spec, device)
    steps = make_steps(model, wrappers)
    batches = [make_batch(seed=i) for i in range(num_steps)]
    # The teachers are outside the module tree.
    modules = [model, *model.teachers.values()]
    models_bytes = sum(
        tensor_bytes(m.parameters()) + tensor_bytes(m.buffers())
        for m in modules)
    inputs_bytes = sum(tensor_bytes(b['inputs']) for b in batches)
    meter = MemoryMeter(device, torch)
    meter.start()
    try:
        for batch in batches:
            steps[condition](batch)
    except Exception as err:  # noqa: B902  (only out-of-memory is reported)
        if not is_out_of_memory(err, torch):
            raise
        return dict(status='skipped', reason=f'out of memory: {err}')
    mb = 2**20
    return dict(
        status='ok',
        peak_mb=meter.peak_beyond_baseline() / mb,
        baseline_mb=meter.baseline / mb,
        models_mb=models_bytes / mb,
        inputs_mb=inputs_bytes / mb,
        steps=num_steps,
        method=meter.method)


def memory_process_main(spec, condition, options, conn):
    """Body of a memory process: measure, send the result, exit."""
    try:
        use_threads(options['threads'])
        result = measure_memory(spec, condition, options['device'],
                                options['memory_steps'])
    except Exception as err:  # noqa: B902  (reported in the results)
        traceback.print_exc()
        result = dict(status='failed', reason=f'{type(err).__name__}: {err}')
    conn.send(result)
    conn.close()


class MemoryProcesses:
    """Fresh processes for the memory measurements.

    They are forked from a fork server that has imported torch, mmengine,
    mmseg, mmdet and mmstructkd and done nothing else: each starts in a
    fraction of a second instead of the ~6 s those imports take, holds no
    model, allocator pool or OpenMP thread pool from earlier work, and has
    its own peak-memory counters.
    """
    PRELOAD = ['torch', 'mmengine.optim', 'mmstructkd', 'mmseg.models',
               'mmdet.models']

    def __init__(self, args):
        import multiprocessing
        self.context = multiprocessing.get_context('forkserver')
        self.context.set_forkserver_preload(self.PRELOAD)
        self.args = args
        self.options = dict(device=args.device, threads=args.threads,
                            memory_steps=args.memory_steps)

    def run(self, spec, condition):
        from multiprocessing.connection import wait
        receiver, sender = self.context.Pipe(duplex=False)
        proc = self.context.Process(
            target=memory_process_main,
            args=(spec, condition, self.options, sender), daemon=True)
        proc.start()
        sender.close()
        result = None
        if receiver in wait([receiver, proc.sentinel], self.args.timeout):
            try:
                result = receiver.recv()
            except EOFError:  # it died before sending anything
                pass
        elif proc.is_alive():
            proc.kill()
            proc.join()
            return dict(status='failed',
                        reason=f'timed out after {self.args.timeout:.0f} s')
        proc.join()
        if result is not None:
            return result
        if proc.exitcode == -9:
            # The kernel's out-of-memory killer: it does not fit here.
            return dict(status='skipped',
                        reason='killed by signal 9 (out of memory?)')
        return dict(status='failed',
                    reason=f'memory process exited with {proc.exitcode}')

    def measure(self, spec):
        """Peak memory of (a), (b), (c), and (c)/(b)."""
        with ThreadPoolExecutor(max_workers=self.args.memory_jobs) as pool:
            results = list(
                pool.map(lambda c: self.run(spec, c), CONDITIONS))
        memory = dict(zip(CONDITIONS, results))
        out = dict(memory=memory)
        if all(memory[k]['status'] == 'ok' for k in 'bc') and \
                memory['b']['peak_mb'] > 0:
            out['memory_c_over_b'] = (memory['c']['peak_mb'] /
                                      memory['b']['peak_mb'])
        return out

