#!/usr/bin/env python
"""What distillation costs per training step, beyond the teacher itself.

The tool's code and its full description: ``mmstructkd/benchmarks/overhead/``
(``--help`` lists the options).

Examples::

    python tools/benchmark_overhead.py                    # toy set, CPU
    python tools/benchmark_overhead.py --set model-zoo    # CPU, small sizes
    python tools/benchmark_overhead.py --set model-zoo --device cuda
    python tools/benchmark_overhead.py --teacher-precision fp32 bf16
"""
import os.path as osp
import sys

# Run from a source checkout without installing.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from mmstructkd.benchmarks.overhead import exit_status, main  # noqa: E402

if __name__ == '__main__':
    sys.exit(exit_status(main()))
