"""tools/benchmark_accuracy.py: the held-out choice, the seeds and the
summary, on the tiny toy set with a few iterations per run."""
import json
import math
import os.path as osp
import shlex

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT, run_tool, scalars
from mmstructkd.benchmarks import accuracy as benchmark_accuracy
from mmstructkd.benchmarks.training_logs import final_metrics


SKD_PI_TAG = 'skd_pi_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes'
PLAIN_TAG = 'pspnet_r18-d8-thin16_1xb8-2k_toyscenes'


def logged_val(work_dir):
    """The last validation a run logged itself (its own scalars.json)."""
    val = [x for x in scalars(str(work_dir)) if 'mIoU' in x]
    assert val, f'{work_dir} logged no validation'
    return val[-1]


@pytest.fixture(scope='module')
def seg_benchmark(tmp_path_factory, toy_data_root):
    root = tmp_path_factory.mktemp('accuracy')
    args = [
        'tools/benchmark_accuracy.py', '--task', 'seg', '--methods', 'SKD pi',
        '--seeds', '0', '1', '--iters', '2', '--select-iters', '2',
        '--factors', '0.5', '2', '--seg-teacher-iters', '2', '--jobs', '2',
        '--data-root', toy_data_root, '--teacher-dir', str(root / 'teachers'),
        '--work-dir', str(root / 'work'), '--out-dir', str(root / 'out')
    ]
    first = run_tool(args, timeout=900)
    with open(root / 'out' / 'accuracy_seg.json') as f:
        summary = json.load(f)
    return dict(root=root, args=args, first=first.stdout, summary=summary)


@pytest.mark.slow
def test_held_out_choice_is_the_best_factor(seg_benchmark):
    choice = seg_benchmark['summary']['selection']['SKD pi']
    scores = choice['held_out_scores']
    assert set(scores) == {'0.5', '2'}
    # Each factor's run took place with its weight, and its score is the
    # one that run logged on the held-out split.
    select = seg_benchmark['root'] / 'work' / 'seg' / 'select'
    for factor in ('0.5', '2'):
        run = select / f'{SKD_PI_TAG}_x{factor}'
        assert scores[factor] == logged_val(run)['mIoU'], factor
        config = Config.fromfile(str(run / 'config.py'))
        assert config.model.distiller.distill_losses.loss_pi.loss_weight == \
            pytest.approx(10 * float(factor))
    best = max(scores, key=scores.get)
    assert choice['factor'] == float(best)
    # The factor scales the config's weight (loss_pi: 10).
    assert choice['weights'] == {'loss_pi': pytest.approx(10 * float(best))}
    row = seg_benchmark['summary']['methods']['SKD pi']
    assert row['weights'] == choice['weights']


@pytest.mark.slow
def test_held_out_runs_use_train_fit_and_holdout(seg_benchmark):
    work = seg_benchmark['root'] / 'work' / 'seg'
    select = Config.fromfile(str(
        work / 'select' /
        'skd_pi_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes_x2' /
        'config.py'))
    assert select.train_dataloader.dataset.ann_file == 'splits/train_fit.txt'
    assert select.val_dataloader.dataset.ann_file == \
        'splits/train_holdout.txt'
    assert select.val_dataloader.dataset.data_prefix.img_path == \
        'img_dir/train'
    final = Config.fromfile(str(
        work / 'final' /
        'skd_pi_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes_seed1' /
        'config.py'))
    assert final.val_dataloader.dataset.data_prefix.img_path == 'img_dir/val'
    assert [e['type'] for e in final.val_evaluator] == [
        'IoUMetric', 'mmstructkd.BoundaryIoUMetric']


@pytest.mark.slow
def test_summary_is_computed_from_the_runs(seg_benchmark):
    summary = seg_benchmark['summary']
    rows = summary['methods']
    assert set(rows) == {'student (no KD)', 'SKD pi'}
    # Every (method, seed) final run was trained: its work dir has the
    # checkpoint of the requested length, and the summary holds the metrics
    # that run logged itself.
    final = seg_benchmark['root'] / 'work' / 'seg' / 'final'
    for name, tag in (('student (no KD)', PLAIN_TAG), ('SKD pi', SKD_PI_TAG)):
        row = rows[name]
        assert len(row['runs']) == 2
        for seed, run in zip((0, 1), row['runs']):
            work_dir = final / f'{tag}_seed{seed}'
            assert (work_dir / 'iter_2.pth').is_file(), sorted(
                p.name for p in work_dir.iterdir())
            logged = logged_val(work_dir)
            for key in ('mIoU', 'bIoU'):
                assert run[key] == logged[key], (name, seed, key)
                assert math.isfinite(run[key]) and 0 <= run[key] <= 100
        for key in ('mIoU', 'bIoU'):
            assert math.isfinite(row[key]['mean'])
            assert math.isfinite(row[key]['std']) and row[key]['std'] >= 0
        assert math.isfinite(row['time_per_iter']) and \
            row['time_per_iter'] > 0
    teacher = summary['teachers']['pspnet']
    assert math.isfinite(teacher['mIoU']) and 0 <= teacher['mIoU'] <= 100
    closed = rows['SKD pi']['mIoU']['gap_closed']
    assert closed is None or math.isfinite(closed)
    assert rows['student (no KD)']['mIoU']['gap_closed'] is None
    # The result file records how it was made.
    assert summary['command'] == 'python tools/benchmark_accuracy.py ' + \
        shlex.join(seg_benchmark['args'][1:])
    assert "--methods 'SKD pi' " in summary['command']
    assert summary['seeds'] == [0, 1] and summary['iters'] == 2
    table = (seg_benchmark['root'] / 'out' / 'accuracy_seg.md').read_text()
    assert '| SKD pi |' in table and '| student (no KD) |' in table
    assert f'{rows["SKD pi"]["mIoU"]["mean"]:.2f}' in table


@pytest.mark.slow
def test_second_run_reuses_every_result(seg_benchmark):
    again = run_tool(seg_benchmark['args'], timeout=600).stdout
    trained = [line for line in again.splitlines()
               if line.startswith('[accuracy]') and
               ('/final/' in line or '/select/' in line)]
    assert trained and all('reused' in line for line in trained), again[-3000:]
    assert 'reusing the cached' in again


def test_detection_held_out_config_points_at_the_holdout_json(tmp_path):
    base = osp.join(REPO_ROOT, 'configs', 'toy',
                    'retinanet_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py')
    path = tmp_path / 'config.py'
    path.write_text(benchmark_accuracy.wrapper_config(
        'det', base, 'select', '/data/toy'))
    cfg = Config.fromfile(str(path))
    assert cfg.train_dataloader.dataset.ann_file == \
        'annotations/instances_train_fit.json'
    assert cfg.val_dataloader.dataset.ann_file == \
        'annotations/instances_train_holdout.json'
    assert cfg.val_dataloader.dataset.data_prefix.img == 'img_dir/train/'
    assert cfg.val_evaluator.ann_file == \
        '/data/toy/annotations/instances_train_holdout.json'
    assert cfg.val_evaluator.type == 'CocoMetric'


def test_final_metrics_reads_detection_logs(tmp_path):
    """Detection teachers are cached through the same helper as the
    segmentation one: it must read their bbox mAP, not look for mIoU."""
    vis = tmp_path / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    lines = [dict(loss=1.0, time=0.5, step=1), dict(loss=0.9, time=0.3, step=2),
             dict(loss=0.8, time=0.4, step=3),
             {'coco/bbox_mAP': 0.123, 'step': 3}]
    (vis / 'scalars.json').write_text(
        '\n'.join(json.dumps(x) for x in lines) + '\n')
    got = final_metrics(str(tmp_path), 'coco/bbox_mAP')
    assert got == {'coco/bbox_mAP': 0.123, 'time_per_iter': 0.35}
    with pytest.raises(SystemExit, match='mIoU'):
        final_metrics(str(tmp_path))


@pytest.mark.slow
def test_teacher_trains_on_train_fit_only(seg_benchmark):
    """The held-out images choose the students' weights, so the teacher
    must not have seen them: its run reads splits/train_fit.txt."""
    teacher_dir = seg_benchmark['root'] / 'work' / 'teachers' / 'teacher.pth'
    dumped = sorted(teacher_dir.glob('*/vis_data/config.py'))
    assert dumped, sorted(p.name for p in teacher_dir.iterdir())
    cfg = Config.fromfile(str(dumped[-1]))
    assert cfg.train_dataloader.dataset.ann_file == 'splits/train_fit.txt'


def test_multi_teacher_method_points_every_teacher_at_its_cache(
        tmp_path, monkeypatch):
    teachers = benchmark_accuracy.TEACHERS
    for key in ('pspnet', 'deeplabv3'):
        monkeypatch.setattr(teachers[key], 'checkpoint',
                            str(tmp_path / f'{key}.pth'))
    method = next(m for m in benchmark_accuracy.SEG_METHODS if m.teachers)
    assert method.teacher_keys() == ['pspnet', 'deeplabv3']
    assert method.teacher_options() == [
        f'model.teachers.pspnet.ckpt={tmp_path / "pspnet.pth"}',
        f'model.teachers.deeplabv3.ckpt={tmp_path / "deeplabv3.pth"}']
    # The names are the config's own teacher names.
    cfg = Config.fromfile(method.config)
    assert set(cfg.model.teachers) == set(method.teachers)
    single = next(m for m in benchmark_accuracy.SEG_METHODS if m.distill and
                  not m.teachers)
    assert single.teacher_options() == [
        f'model.teacher_ckpt={tmp_path / "pspnet.pth"}']


def test_table_lists_every_teacher_before_its_first_method():
    def row(teacher, distill, mean, other=()):
        return dict(teacher=teacher, distill=distill,
                    other_teachers=list(other), factor=1.0 if distill else
                    None, time_per_iter=0.1,
                    mIoU=dict(mean=mean, std=0.5, gap_closed=None),
                    bIoU=dict(mean=mean / 2, std=0.5))
    rows = {'student (no KD)': row('pspnet', False, 30.0),
            'two teachers': row('pspnet', True, 33.0, ['deeplabv3'])}
    teachers = dict(pspnet=dict(mIoU=40.0, bIoU=20.0),
                    deeplabv3=dict(mIoU=41.5, bIoU=21.0))
    lines = benchmark_accuracy.table('seg', rows, teachers, None).splitlines()
    names = [line.split(' | ')[0].lstrip('| ') for line in lines[2:]]
    assert names == [benchmark_accuracy.TEACHERS['pspnet'].name,
                     'student (no KD)',
                     benchmark_accuracy.TEACHERS['deeplabv3'].name,
                     'two teachers']
    assert '| 41.50 |' in lines[4]
    # A gain of 3 over a spread of 0.5 helps.
    assert lines[5].split(' | ')[-2] == 'yes'


def test_gfl_teacher_backbone_starts_from_the_segmentation_teacher(
        toy_teacher_ckpt, monkeypatch):
    """The detection proxy's teacher loads the toy PSPNet teacher's backbone
    through the benchmark's --cfg-options, every tensor of it."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import DictAction
    from mmengine.registry import init_default_scope

    teachers = benchmark_accuracy.TEACHERS
    monkeypatch.setattr(teachers['pspnet'], 'checkpoint', toy_teacher_ckpt)
    gfl = teachers['gfl']
    assert gfl.backbone_from == 'pspnet'
    assert teachers['retinanet'].init_options() == []
    # As tools/train.py reads them (relative to the repository root).
    monkeypatch.chdir(REPO_ROOT)
    parser = __import__('argparse').ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    options = parser.parse_args(
        ['--cfg-options'] + gfl.init_options()).cfg_options
    cfg = Config.fromfile(gfl.config)
    assert cfg.model.backbone.init_cfg is None  # by itself, from scratch
    cfg.merge_from_dict(options)
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    model.init_weights()
    source = torch.load(toy_teacher_ckpt, map_location='cpu',
                        weights_only=True)['state_dict']
    backbone = model.backbone.state_dict()
    assert len(backbone) > 100
    for name, value in backbone.items():
        assert torch.equal(value, source['backbone.' + name]), name


def test_each_task_reads_its_own_set(tmp_path, monkeypatch):
    """Detection runs on the detection layout's set, segmentation on the
    bundled one: each run's TOY_DATA_ROOT and held-out annotation file."""
    assert benchmark_accuracy.DATA_LAYOUT['seg'] == []
    assert benchmark_accuracy.DATA_LAYOUT['det'] == [
        '--object-scale', '1.5', '--min-depth', '0.55']
    calls = []
    monkeypatch.setattr(benchmark_accuracy, 'train',
                        lambda config, work_dir, options, **kw:
                        calls.append((config, kw['extra_env'])))
    monkeypatch.setattr(benchmark_accuracy, 'load_scalars', lambda work_dir: [
        {'coco/bbox_mAP': 0.2, 'mIoU': 30.0, 'step': 4}])
    args = __import__('argparse').Namespace(
        jobs=1, work_dir=str(tmp_path),
        data_roots=dict(seg='/seg', det='/det'))
    runner = benchmark_accuracy.Runner(args)
    plain = {m.teacher: m for m in benchmark_accuracy.DET_METHODS +
             benchmark_accuracy.SEG_METHODS if not m.distill}
    runner.train('det', plain['gfl'], 'select', 0, 4, {}, 'gfl')
    runner.train('seg', plain['pspnet'], 'select', 0, 4, {}, 'psp')
    assert [env for _, env in calls] == [dict(TOY_DATA_ROOT='/det'),
                                        dict(TOY_DATA_ROOT='/seg')]
    assert "'/det/annotations/instances_train_holdout.json'" in open(
        calls[0][0]).read()
    # By itself, the proxy's config reads the detection set at 96x96.
    monkeypatch.delenv('TOY_DATA_ROOT', raising=False)
    cfg = Config.fromfile(benchmark_accuracy.TOY_GFL_STUDENT)
    assert cfg.train_dataloader.dataset.data_root == 'data/toy_scenes_det'
    assert cfg.val_evaluator.ann_file == \
        'data/toy_scenes_det/annotations/instances_val.json'
    assert cfg.train_dataloader.dataset.pipeline[2].scale == (96, 96)
    assert cfg.val_dataloader.dataset.pipeline[1].scale == (96, 96)

