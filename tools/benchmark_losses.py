#!/usr/bin/env python
"""Time and peak memory of the distillation losses, one forward+backward step.

The tool's code and its full description:
``mmstructkd/benchmarks/losses/``
(``--help`` lists the options).

Examples::

    python tools/benchmark_losses.py --only pair-wise
    python tools/benchmark_losses.py --quick --repeats 1 --out /tmp/x.json
"""
import os.path as osp
import sys

# Run from a source checkout without installing.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from mmstructkd.benchmarks.losses.cli import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
