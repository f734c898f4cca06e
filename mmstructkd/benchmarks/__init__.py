"""The benchmark tooling behind ``tools/benchmark_*.py`` and ``tools/demo.py``.

The command-line scripts in ``tools/`` are thin: each calls a ``main``
here. Shared pieces, each with one home:

* :mod:`.config_lists`: the repository's paths and the configs the
  benchmarks run;
* :mod:`.processes`: running a Python child process (a training, a test, a
  benchmark worker) and reading a worker's answer;
* :mod:`.training_logs`: reading mmengine's ``scalars.json``;
* :mod:`.toy_training`: the schedule options of a short toy training, and
  a training run through ``tools/train.py``;
* :mod:`.teacher_cache`: a teacher trained once and reused while its
  config, schedule and data are unchanged;
* :mod:`.random_batches`: random segmentation / detection batches as a
  dataloader yields them;
* :mod:`.memory` and :mod:`.machine`: peak memory of a process, and the
  machine's description.

The jobs: :mod:`.demo` (``make demo``), and the benchmarks
:mod:`.accuracy`, :mod:`.overhead`, :mod:`.losses`, :mod:`.teacher_forward`.
This file imports nothing: each module imports what it needs.

They run from a source checkout (they need ``configs/`` and ``tools/``
next to the package).
"""
