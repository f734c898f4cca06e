"""tools/benchmark_overhead.py: times (a) student, (b) + bare teacher
forward, (c) distillation step for a toy segmentation, a toy detection and a
model-zoo config, measures each one's peak memory in fresh processes, and
writes JSON + Markdown with a row per requested config and the command."""
import json
import math
import os.path as osp
import statistics

import pytest
import torch

from conftest import REPO_ROOT, run_tool
from mmstructkd.benchmarks import overhead as benchmark_overhead

TOY_SEG = ('configs/toy/skd_pi-pa-ho_pspnet-r34-thin32_pspnet-r18-thin16_'
           '1xb8-2k_toyscenes.py')
TOY_DET = ('configs/toy/cwd_fpn_retinanet-r34-thin32_retinanet-r18-thin16_'
           '1xb8-2k_toyscenes-64x64.py')
MODEL_ZOO = ('configs/cwd/cwd_logits_pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_'
             'cityscapes-512x1024.py')


def positive_finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and \
        value > 0


@pytest.mark.slow
def test_overhead_benchmark_writes_time_memory_and_ratios(tmp_path):
    out = str(tmp_path / 'overhead.json')
    args = [
        '--configs', TOY_SEG, TOY_DET, MODEL_ZOO, '--size', '64', '64',
        '--batch', '2', '--steps', '2', '--warmup', '0', '--memory-jobs',
        '3', '--threads', '1', '--out', out
    ]
    proc = run_tool(['tools/benchmark_overhead.py'] + args, timeout=300)
    with open(out) as f:
        saved = json.load(f)
    info, rows = saved['info'], saved['rows']
    # The result file says how it was made.
    assert info['command'] == ' '.join(['tools/benchmark_overhead.py'] +
                                       args)
    assert info['device'] == 'cpu' and info['threads'] == 1
    assert info['torch'] == torch.__version__
    for key in ('load_average_start', 'load_average_end'):
        assert len(info[key]) == 3 and all(x >= 0 for x in info[key])
    assert [r['config'] for r in rows] == [TOY_SEG, TOY_DET, MODEL_ZOO]
    assert [r['task'] for r in rows] == ['seg', 'det', 'seg']
    assert [r['set'] for r in rows] == ['toy', 'toy', 'model-zoo']
    # The config's own sizes are recorded next to the measured one.
    assert [r['crop_size'] for r in rows] == [[96, 96], [64, 64],
                                              [512, 1024]]
    # Every requested config was measured: each kind of step ran --steps
    # times and took time, each memory process ran and used memory.
    for row in rows:
        assert row['status'] == 'ok', row.get('reason')
        assert row['size'] == [64, 64] and row['batch'] == 2
        times, med = row['times_s'], row['median_s']
        for key in 'abc':
            assert len(times[key]) == 2, (row['name'], key)
            assert all(positive_finite(t) for t in times[key])
            assert positive_finite(med[key])
        for key in ('c_over_b', 'b_over_a', 'memory_c_over_b'):
            assert positive_finite(row[key]), (row['name'], key, row[key])
        memory = row['memory']
        for key in 'abc':
            assert memory[key]['status'] == 'ok', memory[key]
            assert memory[key]['steps'] == 2
            assert positive_finite(memory[key]['peak_mb'])
            assert positive_finite(memory[key]['models_mb'])
    seg, det, zoo = rows
    # CWD on FPN levels needs only the teacher's backbone and neck.
    assert det['teacher_forward_mode'] == 'feat'
    # CWD is held to 1.05, SKD pi+pa+ho (critic included) to 1.10.
    assert zoo['target'] == 1.05 and seg['target'] == 1.10
    assert isinstance(zoo['meets_target'], bool)
    assert seg['meets_target'] == (seg['c_over_b'] <= 1.10)
    # The model-zoo teacher (PSPNet-R101) outweighs the toy models.
    assert zoo['memory']['c']['models_mb'] > 10 * seg['memory']['c'][
        'models_mb']
    # The adversarial critic is timed on its own, inside (c).
    assert seg['adversarial'] and not det['adversarial']
    # The critic step ran inside every timed (c) step.
    critic = seg['critic_times_s']
    assert len(critic) == 2 and all(
        0 < k < c for k, c in zip(critic, seg['times_s']['c']))
    for key in ('critic_median_s', 'c_without_critic_median_s',
                'c_without_critic_over_b'):
        assert positive_finite(seg[key]), (key, seg[key])
    assert 'critic_times_s' not in det and 'critic_times_s' not in zoo

    with open(osp.splitext(out)[0] + '.md') as f:
        table = f.read()
    assert table in proc.stdout
    # A time row, then a memory row, per config.
    lines = {row['name']: [line for line in table.splitlines()
                           if line.startswith(f'| {row["name"]} | 2 x 64x64')]
             for row in rows}
    assert all(len(found) == 2 for found in lines.values()), lines
    time_line, _ = lines[zoo['name']]
    assert '| <= 1.05 (' in time_line
    assert info['command'] in table


def test_default_sizes_per_config_family():
    cpu = benchmark_overhead.parse_args([])
    cuda = benchmark_overhead.parse_args(['--device', 'cuda'])
    cityscapes = osp.join(REPO_ROOT, MODEL_ZOO)
    coco = osp.join(REPO_ROOT, 'configs', 'ssim',
                    'ssim_fpn_faster-rcnn-r101_faster-rcnn-r50_8xb2-1x_'
                    'coco.py')
    # CPU: a quarter of the crop; batch 2, the least PSPNet trains with.
    spec = benchmark_overhead.resolve(cityscapes, cpu)
    assert (spec['size'], spec['batch'], spec['steps'],
            spec['warmup']) == ([256, 512], 2, 5, 1)
    spec = benchmark_overhead.resolve(cityscapes, cuda)
    assert (spec['size'], spec['batch']) == ([512, 1024], 2)
    spec = benchmark_overhead.resolve(coco, cpu)
    assert (spec['task'], spec['size'], spec['crop_size'],
            spec['batch']) == ('det', [512, 512], [800, 1333], 1)
    assert benchmark_overhead.resolve(coco, cuda)['size'] == [800, 1333]
    toy = benchmark_overhead.resolve(osp.join(REPO_ROOT, TOY_DET), cpu)
    assert (toy['size'], toy['batch'], toy['steps']) == ([64, 64], 8, 20)
    custom = benchmark_overhead.parse_args(['--size', '32', '48'])
    assert benchmark_overhead.resolve(coco, custom)['size'] == [32, 48]


def test_cuda_without_a_gpu_exits_with_a_clear_message(monkeypatch,
                                                       tmp_path):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    out = str(tmp_path / 'overhead.json')
    with pytest.raises(SystemExit) as exc:
        benchmark_overhead.main(['--device', 'cuda', '--configs', TOY_SEG,
                                 '--out', out])
    assert 'no CUDA device is available' in str(exc.value)
    assert '--device cpu' in str(exc.value)
    assert not osp.exists(out)


TOY_CWD = ('configs/toy/cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_'
           '1xb8-2k_toyscenes.py')


def test_teacher_precision_costs_are_timed_and_tabled(tmp_path):
    out = str(tmp_path / 'precision.json')
    rows = benchmark_overhead.main([
        '--configs', TOY_CWD, '--size', '32', '32', '--batch', '2',
        '--steps', '2', '--warmup', '0', '--memory-steps', '0',
        '--threads', '1', '--teacher-precision', 'fp32', 'bf16',
        '--out', out])
    with open(out) as f:
        row, = json.load(f)['rows']
    assert row == json.loads(json.dumps(rows[0]))
    assert row['status'] == 'ok', row.get('reason')
    # (a), (b), (c) as before, (b) and (c) in the config's precision.
    assert set(row['times_s']) == set('abc')
    assert row['teacher_precision'] == 'fp32'
    costs = row['teacher_precisions']
    assert list(costs) == ['fp32', 'bf16']
    for precision, cost in costs.items():
        assert len(cost['times_s']) == 2
        assert all(positive_finite(t) for t in cost['times_s'])
        assert math.isfinite(cost['teacher_forward_s'])
        # (b) - (a), per step.
        assert cost['teacher_forward_s'] == pytest.approx(
            statistics.median(b - a for b, a in zip(
                cost['times_s'], row['times_s']['a'])))
    if costs['fp32']['teacher_forward_s'] > 0:
        assert costs['bf16']['teacher_forward_over_first'] == pytest.approx(
            costs['bf16']['teacher_forward_s'] /
            costs['fp32']['teacher_forward_s'])
    with open(osp.splitext(out)[0] + '.md') as f:
        table = f.read()
    assert '| (b) - (a), fp32 | (b) - (a), bf16 | bf16 / fp32 |' in table
    assert sum(line.startswith(f'| {row["name"]} | 2 x 32x32')
               for line in table.splitlines()) == 2


def test_teacher_precision_options_are_checked():
    args = benchmark_overhead.parse_args(['--teacher-precision', 'bf16'])
    assert args.teacher_precision == ['bf16']
    assert benchmark_overhead.parse_args([]).teacher_precision is None
    for bad in (['fp16'], ['fp32', 'fp32'], ['fp8']):
        with pytest.raises(SystemExit):
            benchmark_overhead.parse_args(['--teacher-precision'] + bad)
    cuda = benchmark_overhead.parse_args(
        ['--device', 'cuda', '--teacher-precision', 'fp32', 'fp16'])
    assert cuda.teacher_precision == ['fp32', 'fp16']


def test_amp_switches_every_optimizer_wrapper_as_train_does(tmp_path):
    """--amp: the steps run with tools/train.py --amp's wrappers (bf16
    autocast on the CPU), recorded in the results."""
    from mmstructkd.benchmarks.overhead.specs import resolve
    from mmstructkd.benchmarks.overhead.steps import build
    args = benchmark_overhead.parse_args(['--amp', '--size', '32', '32'])
    spec = resolve(osp.join(REPO_ROOT, TOY_SEG), args)
    assert spec['amp'] is True
    model, wrappers, _ = build(spec, 'cpu')
    # SKD's critic has its own wrapper: both are switched.
    kinds = {type(w).__name__ for w in wrappers.values()}
    assert kinds == {'AutocastOptimWrapper'}, kinds
    spec['amp'] = False
    _, plain, _ = build(spec, 'cpu')
    assert {type(w).__name__ for w in plain.values()} == {'OptimWrapper'}

    out = str(tmp_path / 'amp.json')
    rows = benchmark_overhead.main([
        '--configs', TOY_CWD, '--size', '32', '32', '--batch', '2',
        '--steps', '1', '--warmup', '0', '--memory-steps', '0',
        '--threads', '1', '--amp', '--out', out])
    assert rows[0]['status'] == 'ok', rows[0].get('reason')
    with open(out) as f:
        result = json.load(f)
    assert result['info']['amp'] is True and result['rows'][0]['amp']
    with open(osp.splitext(out)[0] + '.md') as f:
        assert 'mixed precision (--amp)' in f.read()


def test_every_method_has_its_overhead_target():
    from mmstructkd.benchmarks.overhead.specs import target_of
    light = ('cwd_logits_x', 'cwd_fpn_x', 'skd_pi_x', 'pkd_fpn_x',
             'dist_logits_x', 'dist_cls_x')
    assert {name: target_of(name) for name in light} == dict.fromkeys(
        light, 1.05)
    other = ('skd_pi-pa-fullres_x', 'skd_pi-pa-ho_x', 'skd_pa-fpn_x',
             'ssim_fpn_x', 'bcd_x', 'mgd_fpn_x', 'fbkd_fpn_x', 'crosskd_x',
             'cwd-bcd_x')
    assert {name: target_of(name) for name in other} == dict.fromkeys(
        other, 1.10)
