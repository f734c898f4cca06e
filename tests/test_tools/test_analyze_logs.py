"""tools/analyze_logs.py on synthetic mmengine logs with known values."""
import json
import os
import os.path as osp
import sys
import types

import numpy as np
import pytest
from PIL import Image

from conftest import run_tool
from mmstructkd.visualization.curves import (format_table, plot_log_curves,
                                             summary_rows)
from mmstructkd.visualization.logs import (find_scalars, load_scalars,
                                           moving_average, select_keys,
                                           series)


def write_run(work_dir, iters=10, scale=1.0, resumed_from=None):
    """A work dir laid out as mmengine writes it, with known values:
    distill.loss_cwd = scale * (10 - i), distill_weight.loss_cwd warms up
    over 4 iterations to 5, a validation line every 5 iterations."""
    log_dir = osp.join(work_dir, '20240101_000000', 'vis_data')
    os.makedirs(log_dir, exist_ok=True)
    lines = []
    for i in range(1, iters + 1):
        lines.append({
            'lr': 0.01, 'loss': 2.0, 'student.decode.loss_ce': 1.0 / i,
            'distill.loss_cwd': scale * (10 - i),
            'distill_weight.loss_cwd': 5.0 * min(i / 4, 1.0),
            'nonfinite.skipped': 0.0, 'disc.d_total': 3.0,
            'time': 0.1, 'iter': i, 'step': i})
        if i % 5 == 0:
            lines.append({'mIoU': 10.0 * i, 'step': i})
    if resumed_from is not None:
        # A resumed run logs iterations again: the later value counts.
        lines.append({'distill.loss_cwd': -1.0, 'iter': resumed_from,
                      'step': resumed_from})
    path = osp.join(log_dir, 'scalars.json')
    with open(path, 'w') as f:
        f.write('\n'.join(json.dumps(line) for line in lines) + '\n')
    return path


def test_series_and_key_selection(tmp_path):
    path = write_run(str(tmp_path / 'a'), resumed_from=3)
    assert find_scalars(str(tmp_path / 'a')) == path
    records = load_scalars(path)
    steps, values = series(records, 'distill.loss_cwd')
    np.testing.assert_array_equal(steps, np.arange(1, 11))
    expected = 10.0 - np.arange(1, 11)
    expected[2] = -1.0
    np.testing.assert_array_equal(values, expected)
    steps, values = series(records, 'mIoU')
    np.testing.assert_array_equal(steps, [5, 10])
    np.testing.assert_array_equal(values, [50, 100])
    # Default patterns: weights first, then distillation, student; counters
    # that stay 0 and the critic's duplicate total are left out.
    assert select_keys([records]) == [
        'distill_weight.loss_cwd', 'distill.loss_cwd',
        'student.decode.loss_ce'
    ]
    assert select_keys([records], ['disc.d_total', 'mIoU']) == [
        'disc.d_total', 'mIoU']
    np.testing.assert_allclose(moving_average(np.array([1., 3, 5, 7]), 2),
                               [1, 2, 4, 6])
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        find_scalars(str(tmp_path / 'nothing'))


def test_plotted_series_match_the_logs(tmp_path):
    runs = [load_scalars(write_run(str(tmp_path / name), scale=scale))
            for name, scale in (('a', 1.0), ('b', 2.0))]
    keys = select_keys(runs)
    fig, plotted = plot_log_curves(runs, keys, ['A', 'B'])
    axes = [ax for ax in fig.axes if ax.lines]
    assert len(axes) == len(keys) == 3
    cwd_ax = next(ax for ax in axes if 'distill.loss_cwd' in ax.get_title())
    lines = {line.get_label(): line for line in cwd_ax.lines}
    for label, scale in (('A', 1.0), ('B', 2.0)):
        np.testing.assert_allclose(lines[label].get_xdata(), np.arange(1, 11))
        np.testing.assert_allclose(lines[label].get_ydata(),
                                   scale * (10 - np.arange(1, 11)))
        np.testing.assert_allclose(plotted[(label, 'distill.loss_cwd')][1],
                                   scale * (10 - np.arange(1, 11)))
    weight_ax = next(ax for ax in axes if 'distill_weight' in ax.get_title())
    weight_line = weight_ax.lines[0]
    assert weight_line.get_drawstyle() == 'steps-post'
    np.testing.assert_allclose(weight_line.get_ydata(),
                               [1.25, 2.5, 3.75, 5, 5, 5, 5, 5, 5, 5])
    # With smoothing the labelled line is the moving average.
    fig, _ = plot_log_curves(runs[:1], ['distill.loss_cwd'], ['A'], smooth=3)
    smoothed = [line for line in fig.axes[0].lines
                if line.get_label() == 'A'][0]
    np.testing.assert_allclose(smoothed.get_ydata()[:4], [9, 8.5, 8, 7])
    rows = summary_rows(runs, ['distill.loss_cwd'], ['A', 'B'])
    assert rows[1] == ['A', 'distill.loss_cwd', '10', '9', '0', '0', '9',
                       '0']
    assert rows[2][3:5] == ['18', '0']
    table = format_table(rows)
    assert table.splitlines()[1].startswith('---')


def test_tool_writes_png_and_table(tmp_path):
    write_run(str(tmp_path / 'a'))
    write_run(str(tmp_path / 'b'), scale=2.0)
    out = str(tmp_path / 'plots' / 'curves.png')
    proc = run_tool(['tools/analyze_logs.py', str(tmp_path / 'a'),
                     str(tmp_path / 'b'), '--out', out, '--legend', 'A', 'B',
                     '--smooth', '2'])
    with Image.open(out) as image:
        assert image.format == 'PNG'
        assert image.size[0] >= 900 and image.size[1] >= 250
        assert np.asarray(image.convert('RGB')).std() > 10
    table = proc.stdout.splitlines()
    row = next(line.split() for line in table
               if line.startswith('B ') and 'distill.loss_cwd' in line)
    assert row[2:5] == ['10', '18', '0']
    assert 'saved 3 curves' in proc.stdout
    proc = run_tool(['tools/analyze_logs.py', str(tmp_path / 'a'), '--out',
                     out, '--keys', 'no.such.*'], check=False)
    assert proc.returncode != 0 and 'none of' in proc.stdout


def test_mmseg_analyze_logs_reads_our_logs(tmp_path, monkeypatch):
    """mmseg's own analyze_logs.py parses our scalars.json (its plot needs
    seaborn, which the stack does not install: stubbed here)."""
    import mmseg
    script = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools',
                      'analysis_tools', 'analyze_logs.py')
    assert osp.isfile(script), script
    stub = types.ModuleType('seaborn')
    stub.set_style = lambda *args, **kwargs: None
    monkeypatch.setitem(sys.modules, 'seaborn', stub)
    import importlib.util
    spec = importlib.util.spec_from_file_location('mmseg_analyze_logs',
                                                  script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = write_run(str(tmp_path / 'a'))
    (log, ) = module.load_json_logs([path])
    values = [log[i]['distill.loss_cwd'][0] for i in range(1, 11)]
    assert values == [10.0 - i for i in range(1, 11)]
