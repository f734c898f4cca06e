"""tools/benchmark_losses.py on two tiny pair-wise cases (--quick): it runs
each case in a subprocess and writes JSON and Markdown results."""
import json
import math
import os.path as osp

from conftest import run_tool


def test_quick_pair_wise_benchmark_writes_rows(tmp_path):
    out = osp.join(str(tmp_path), 'losses.json')
    # --quick divides H, W and C by 8: the 32x64 C=256 cases become 4x8 C=32.
    args = ['--only', 'pair-wise', '--quick', '--match', r'C=32, 4x8$',
            '--out', out]
    proc = run_tool(['tools/benchmark_losses.py'] + args, timeout=120)
    with open(out) as f:
        results = json.load(f)
    rows = results['rows']
    assert {row['label'] for row in rows} == {'full-res (ours)',
                                               'naive M x M'}
    for row in rows:
        assert row['family'] == 'pair-wise'
        assert row['status'] == 'ok', row
        assert math.isfinite(row['median_s']) and row['median_s'] > 0
        assert math.isfinite(row['peak_mb']) and row['peak_mb'] >= 0
        assert row['size'] == 'N=1, C=32, 4x8'
        assert math.isfinite(row['loss_value']) and row['loss_value'] > 0
    # Same inputs, same formula: both implementations give the same loss.
    ours, naive = sorted(rows, key=lambda row: row['label'])
    assert abs(ours['loss_value'] - naive['loss_value']) < 1e-5
    assert math.isfinite(ours['speedup_vs_reference']) and \
        ours['speedup_vs_reference'] > 0
    # One run, recorded with its command line, that made both rows.
    assert len(results['runs']) == 1
    run_id, run = next(iter(results['runs'].items()))
    assert run['command'] == ' '.join(['tools/benchmark_losses.py'] + args)
    assert run['quick'] is True and all(r['run'] == run_id for r in rows)
    machine = run['machine']
    assert machine['torch'] and machine['device'] == 'cpu'
    with open(osp.join(str(tmp_path), 'losses.md')) as f:
        table = f.read()
    assert '| pair-wise | full-res (ours) | N=1, C=32, 4x8 |' in table
    assert '| family | case | size | median s | peak MB |' in proc.stdout


BROKEN_MODULE = "raise ImportError('this family is broken')\n"
# No torch import: the guard skips the case before the worker needs torch.
GUARDED_MODULE = '''
CASES = [dict(family='guarded', label='too big', build='build_big',
              params=dict(C=512, H=1024, W=2048), max_elems=10**6)]
'''


def test_broken_family_fails_and_guarded_case_is_skipped(tmp_path):
    cases_dir = tmp_path / 'cases'
    cases_dir.mkdir()
    (cases_dir / 'broken.py').write_text(BROKEN_MODULE)
    (cases_dir / 'guarded.py').write_text(GUARDED_MODULE)
    out = str(tmp_path / 'losses.json')
    proc = run_tool([
        'tools/benchmark_losses.py', '--cases-dir', str(cases_dir), '--out',
        out
    ], timeout=60, check=False)
    assert proc.returncode == 1, proc.stdout  # a family failed
    with open(out) as f:
        rows = {row['family']: row for row in json.load(f)['rows']}
    assert rows['broken']['status'] == 'failed'
    assert 'this family is broken' in rows['broken']['reason']
    assert rows['guarded']['status'] == 'skipped'
    assert 'max_elems' in rows['guarded']['reason']
    assert '| guarded | too big | C=512, 1024x2048 | - | - | skipped' in \
        proc.stdout
