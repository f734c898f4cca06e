"""Time and peak memory of the distillation losses, one forward+backward step.

Case modules live in ``mmstructkd/benchmarks/losses/cases/<family>.py``
(or ``--cases-dir``). Each defines
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

Modules: :mod:`.options` (the command line), :mod:`.discovery` (finding
and sizing the cases), :mod:`.worker` (the subprocess that measures one
case), :mod:`.report` (ratios, table, merging with earlier results),
:mod:`.cli` (``tools/benchmark_losses.py``). Imports nothing itself, so
that a worker process imports only what it needs.
"""
