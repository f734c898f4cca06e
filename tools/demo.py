#!/usr/bin/env python
"""The main job: distil the toy teacher into the toy student and compare.

The tool's code and its full description:
``mmstructkd/benchmarks/demo.py``
(``--help`` lists the options).

Usage:
    python tools/demo.py [--iters 300] [--seeds 0 1 2] [--teacher-iters 1200]
"""
import os.path as osp
import sys

# Run from a source checkout without installing.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from mmstructkd.benchmarks.demo import main  # noqa: E402

if __name__ == '__main__':
    main()
