"""The shared pieces of ``mmstructkd.benchmarks``: the scalars.json reader,
the child-process runner and the worker protocol, the random batches, the
config lists and the thin tools/ scripts."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from mmstructkd.benchmarks import (config_lists, processes, teacher_cache,
                                   training_logs)
from mmstructkd.benchmarks.losses.cases import context
from mmstructkd.benchmarks.random_batches import det_batch, seg_batch


def write_log(work_dir, timestamp, records):
    vis = work_dir / timestamp / 'vis_data'
    vis.mkdir(parents=True)
    path = vis / 'scalars.json'
    path.write_text('\n'.join(json.dumps(r) for r in records) + '\n\n')
    return path


# ------------------------------------------------------- training logs ---
def test_newest_log_is_the_last_timestamp_not_the_last_written(tmp_path):
    newer = write_log(tmp_path, '20260102_000000', [dict(step=2, loss=1.0)])
    older = write_log(tmp_path, '20260101_000000', [dict(step=1, loss=2.0)])
    # The older run's file was written last (e.g. copied): the name decides.
    os.utime(newer, (1, 1))
    assert training_logs.find_scalars(str(tmp_path)) == str(newer)
    assert training_logs.load_scalars(str(tmp_path)) == [dict(step=2,
                                                              loss=1.0)]
    # A file is read as it is.
    assert training_logs.load_scalars(str(older)) == [dict(step=1, loss=2.0)]


def test_scalars_reader_falls_back_and_explains(tmp_path):
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        training_logs.find_scalars(str(tmp_path))
    (tmp_path / 'vis_data').mkdir()
    plain = tmp_path / 'vis_data' / 'scalars.json'
    plain.write_text('{"step": 1}\nnot json\n')
    assert training_logs.find_scalars(str(tmp_path)) == str(plain)
    with pytest.raises(ValueError, match='line 2 is not JSON'):
        training_logs.load_scalars(str(tmp_path))


def test_final_metrics_of_a_segmentation_run(tmp_path):
    write_log(tmp_path, '20260101_000000', [
        dict(loss=1.0, time=9.0, step=1), dict(loss=0.9, time=0.2, step=2),
        {'mIoU': 40.0, 'aAcc': 80.0, 'step': 2}])
    assert training_logs.final_metrics(str(tmp_path)) == dict(
        mIoU=40.0, aAcc=80.0, teacher_mIoU=None, time_per_iter=0.2)


# ------------------------------------------------------------ processes ---
def test_check_python_echoes_progress_and_shows_the_tail_on_failure(capsys):
    script = ('print("x - mmengine - INFO - Iter(train) [1/2] eta: 0:00:01")\n'
              'print("some config dump")\n'
              'raise SystemExit("broken on purpose")\n')
    with pytest.raises(SystemExit, match='training failed'):
        processes.check_python(['-c', script], echo_prefix='  [run] ',
                               failure='training failed')
    out = capsys.readouterr().out
    assert '  [run] Iter(train) [1/2] eta: 0:00:01' in out
    # The failed child's output follows, its error last.
    assert 'some config dump' in out and 'broken on purpose' in out


def test_check_python_with_a_log_names_it(tmp_path, capsys):
    log = str(tmp_path / 'train.log')
    with pytest.raises(SystemExit) as exc:
        processes.check_python(['-c', 'print("hello"); raise SystemExit(3)'],
                               log_path=log, failure='[x] run failed')
    assert str(exc.value) == f'[x] run failed; see {log}'
    assert open(log).read() == 'hello\n'
    assert capsys.readouterr().out == ''
    # Success: nothing raised, the environment reaches the child.
    processes.check_python(
        ['-c', 'import os; print(os.environ["OMP_NUM_THREADS"], '
         'os.environ["MY_VAR"], os.environ["PYTHONPATH"])'],
        log_path=log, threads=3, extra_env=dict(MY_VAR='v'))
    threads, var, path = open(log).read().split()
    assert (threads, var) == ('3', 'v')
    assert path.split(os.pathsep)[0] == REPO_ROOT


def test_worker_protocol_and_failure_reasons():
    proc = processes.run_python(
        ['-c', 'from mmstructkd.benchmarks.processes import print_result\n'
         'print("noise"); print_result(dict(a=1)); print_result([2])'],
        timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert processes.parse_result(proc) == [2]  # the last answer
    failed = subprocess.CompletedProcess([], 1, stdout='noise\n',
                                         stderr='Traceback\nValueError: x\n')
    assert processes.parse_result(failed) is None
    assert processes.failure_reason(failed) == 'ValueError: x'
    killed = subprocess.CompletedProcess([], -9, stdout='', stderr='')
    assert processes.failure_reason(killed) == \
        'killed by signal 9 (out of memory?)'
    with pytest.raises(subprocess.TimeoutExpired):
        processes.run_python(['-c', 'import time; time.sleep(30)'],
                             timeout=0.5)


# ------------------------------------------------------ random batches ---
def test_random_batches_are_seeded_and_inside_the_picture():
    seg = seg_batch(2, (8, 12), num_classes=3, seed=0)
    assert [tuple(x.shape) for x in seg['inputs']] == [(3, 8, 12)] * 2
    labels = seg['data_samples'][0].gt_sem_seg.data
    assert tuple(labels.shape) == (1, 8, 12) and int(labels.max()) < 3
    det = det_batch(1, (32, 64), num_classes=2, seed=1, num_boxes=4,
                    box_scale=(0.05, 0.3))
    boxes = det['data_samples'][0].gt_instances.bboxes
    assert tuple(boxes.shape) == (4, 4)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 64).all() and \
        (boxes[:, 3] <= 32).all()
    widths = boxes[:, 2] - boxes[:, 0]
    assert ((widths >= 0.05 * 64 - 1e-4) & (widths <= 0.3 * 64 + 1e-4)).all()
    again = det_batch(1, (32, 64), num_classes=2, seed=1, num_boxes=4,
                      box_scale=(0.05, 0.3))
    assert (again['data_samples'][0].gt_instances.bboxes == boxes).all()


# ------------------------------------------------------- teacher cache ---
def test_teacher_cache_key_follows_inherited_files_not_formatting(tmp_path):
    base = tmp_path / 'base.py'
    child = tmp_path / 'child.py'
    base.write_text('model = dict(depth=18, width=16)\n')
    child.write_text("_base_ = ['./base.py']\nlr = 0.01\n")
    first = teacher_cache.config_digest(str(child))
    # Same resolved config, other formatting: the cached teacher stays.
    child.write_text("_base_ = ['./base.py']\n\n# a comment\nlr = 1e-2\n")
    assert teacher_cache.config_digest(str(child)) == first
    # An edit in the inherited file alone retrains it.
    base.write_text('model = dict(depth=34, width=16)\n')
    assert teacher_cache.config_digest(str(child)) != first


def test_teacher_cache_key_leaves_out_where_the_data_lie(tmp_path,
                                                          monkeypatch):
    config = tmp_path / 'teacher.py'
    config.write_text(
        "data_root = '{{$TOY_DATA_ROOT:data/toy_scenes}}'\n"
        "train = dict(ann_file=data_root + '/annotations/train.json')\n"
        "model = dict(depth=18)\n")
    monkeypatch.setenv('TOY_DATA_ROOT', '/somewhere/toy')
    first = teacher_cache.config_digest(str(config))
    monkeypatch.setenv('TOY_DATA_ROOT', '/elsewhere/toy_copy')
    assert teacher_cache.config_digest(str(config)) == first
    # Anything else, the file name under the root included, still counts.
    config.write_text(config.read_text().replace('train.json', 'fit.json'))
    assert teacher_cache.config_digest(str(config)) != first


def test_cached_teacher_is_reused_only_for_the_same_key(tmp_path,
                                                         monkeypatch):
    config = tmp_path / 'teacher.py'
    config.write_text('model = dict(depth=18)\n')
    cached = str(tmp_path / 'cache' / 'teacher.pth')
    trained, envs = [], []

    def fake_train(config, work_dir, options, echo_prefix='',
                   extra_env=None):
        trained.append(options)
        envs.append(extra_env)
        os.makedirs(work_dir)
        ckpt = osp.join(work_dir, 'iter_4.pth')
        with open(ckpt, 'w') as f:
            f.write('weights')
        with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
            f.write(ckpt)

    monkeypatch.setattr(teacher_cache, 'train', fake_train)
    monkeypatch.setattr(teacher_cache, 'scheduler_options',
                        lambda config, iters: [])
    monkeypatch.setattr(teacher_cache, 'final_metrics',
                        lambda work_dir, key: {key: 50.0})

    def run(**kwargs):
        args = dict(config=str(config), cached=cached, iters=4,
                    data_stamp='d1', work_dir=str(tmp_path / 'work'),
                    log=lambda msg: None, options=['a=1'])
        args.update(kwargs)
        return teacher_cache.train_cached(**args)

    assert run() == {'mIoU': 50.0}
    assert len(trained) == 1 and trained[0][-1] == 'a=1'
    assert run() == {'mIoU': 50.0} and len(trained) == 1  # reused
    for change in (dict(iters=5), dict(data_stamp='d2'),
                   dict(options=['a=2'])):
        run()  # back to the first key (retrains after the previous change)
        before = len(trained)
        run(**change)
        assert len(trained) == before + 1, change
    config.write_text('model = dict(depth=34)\n')
    before = len(trained)
    run()
    assert len(trained) == before + 1
    # A file it depends on (the checkpoint its backbone starts from) joins
    # the key by content; without one the key keeps its old form, so the
    # caches made before stay valid.
    with open(cached + '.json') as f:
        assert 'depends' not in json.load(f)['key']
    source = tmp_path / 'backbone.pth'
    source.write_text('v1')
    run(depends=[str(source)], extra_env=dict(TOY_DATA_ROOT='/det'))
    assert len(trained) == before + 2 and envs[-1] == dict(
        TOY_DATA_ROOT='/det')
    run(depends=[str(source)])
    assert len(trained) == before + 2  # reused
    source.write_text('v2')
    run(depends=[str(source)])
    assert len(trained) == before + 3


# -------------------------------------------------------- config lists ---
def test_listed_configs_exist():
    listed = (config_lists.OVERHEAD_SETS['all'] + [
        config_lists.TOY_SEG_TEACHER, config_lists.TOY_SEG_STUDENT,
        config_lists.TOY_RETINA_TEACHER, config_lists.TOY_RETINA_STUDENT,
        config_lists.TOY_FRCNN_TEACHER, config_lists.TOY_FRCNN_STUDENT,
        osp.join(REPO_ROOT, config_lists.TEACHER_FORWARD_CONFIG)])
    missing = [path for path in listed if not osp.isfile(path)]
    assert not missing
    assert config_lists.REPO_ROOT == REPO_ROOT


def test_context_cases_pair_ours_with_the_naive_reference():
    sizes = [(c['params']['C'], c['params']['H'], c['params']['W'])
             for c in context.CASES]
    assert sizes == [(256, 64, 128)] * 2 + [(64, 128, 256)] * 2
    assert [c.get('key') for c in context.CASES] == [None, 'naive'] * 2
    assert all(c['reference'] == 'naive' for c in context.CASES[::2])


# --------------------------------------------------------- thin tools ---
@pytest.mark.parametrize('tool', [
    'tools/demo.py', 'tools/benchmark_accuracy.py',
    'tools/benchmark_overhead.py', 'tools/benchmark_losses.py',
    'tools/benchmark_teacher_forward.py'
])
def test_tool_help(tool, tmp_path):
    # From another folder: the script finds the package by itself.
    proc = subprocess.run([sys.executable, osp.join(REPO_ROOT, tool), '-h'],
                          cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('usage: ')
