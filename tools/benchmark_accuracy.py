#!/usr/bin/env python
"""How much each distillation method helps the toy student, honestly measured.

The tool's code and its full description:
``mmstructkd/benchmarks/accuracy.py``
(``--help`` lists the options).

Usage:
    python tools/benchmark_accuracy.py [--task seg det] [--seeds 0 1 2]
        [--iters 500] [--select-iters 300] [--det-iters 1000]
        [--det-select-iters 500] [--factors 0.3 1 3] [--jobs 2]
"""
import os.path as osp
import sys

# Run from a source checkout without installing.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from mmstructkd.benchmarks.accuracy import main  # noqa: E402

if __name__ == '__main__':
    main()
