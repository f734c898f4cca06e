#!/usr/bin/env python
"""What running the teacher only as far as its FPN saves in a training step.

The tool's code and its full description:
``mmstructkd/benchmarks/teacher_forward.py``
(``--help`` lists the options).

Examples::

    python tools/benchmark_teacher_forward.py          # toy CWD-FPN, 64x64
    python tools/benchmark_teacher_forward.py --steps 20 --batch-size 8
"""
import os.path as osp
import sys

# Run from a source checkout without installing.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from mmstructkd.benchmarks.teacher_forward import main  # noqa: E402

if __name__ == '__main__':
    main()
