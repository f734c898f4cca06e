"""tools/benchmark_overhead.py runs and reports the three step kinds."""
import json
import os.path as osp
import sys

from conftest import REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
import benchmark_overhead  # noqa: E402


def test_overhead_benchmark_smoke(tmp_path):
    out = str(tmp_path / 'overhead.json')
    config = benchmark_overhead.DEFAULT_CONFIGS[0]
    rows = benchmark_overhead.main([config, '--steps', '1', '--warmup', '0',
                                    '--batch', '2', '--size', '32', '--out',
                                    out])
    assert len(rows) == 1
    times = rows[0]['median_s']
    assert all(times[k] > 0 for k in 'abc')
    with open(out) as f:
        saved = json.load(f)
    assert saved['rows'][0]['c_over_b'] == rows[0]['c_over_b']
    assert osp.isfile(str(tmp_path / 'overhead.md'))
