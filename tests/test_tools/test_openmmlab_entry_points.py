"""OpenMMLab's own entry points run mmstructkd unchanged.

mmseg's and mmdet's ``tools/train.py`` and ``tools/test.py``, the copies
shipped in their wheels (``<package>/.mim/tools``, what ``mim train`` runs),
train and test toy distillation configs: ``custom_imports`` in the config is
all that brings mmstructkd in. They run from a directory outside the
repository. The student exported from the trained checkpoint then runs under
``MMSegInferencer`` / ``DetInferencer`` in a process that never imports
mmstructkd, and predicts exactly what mmseg's / mmdet's ``test.py`` predicted
with the distillation checkpoint.
"""
import glob
import importlib
import importlib.util
import json
import math
import os
import os.path as osp
import pickle
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmstructkd  # noqa: F401  (weights-only loading of Runner checkpoints)
from mmstructkd.toy_data.classes import CLASSES, THING_CLASSES

from conftest import REPO_ROOT, quick_train_options, scalars, toy_config

ITERS = 2
SEG_CONFIG = ('cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_'
              'toyscenes.py')
DET_CONFIG = ('cwd_fpn_retinanet-r34-thin32_retinanet-r18-thin16_1xb8-2k_'
              'toyscenes-64x64.py')
DET_TEACHER = 'retinanet_r34-thin32_fpn_1xb8-2k_toyscenes-64x64.py'
NUM_VAL_IMAGES = 4  # conftest's toy_data_root


def openmmlab_tool(package, name):
    """Path of ``name`` in the tools shipped inside ``package``'s wheel."""
    module = importlib.import_module(package)
    path = osp.join(osp.dirname(module.__file__), '.mim', 'tools', name)
    assert osp.isfile(path), f'{package} ships no {name}: {path}'
    return path


def run_python(args, cwd, env):
    """``python ARGS`` in ``cwd`` (outside the repository); stdout+stderr.

    The repository is on PYTHONPATH so that ``custom_imports`` finds
    mmstructkd even where the suite runs without installing it; nothing of
    the repository is on the path of the OpenMMLab tools otherwise.
    """
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = REPO_ROOT + os.pathsep + full_env.get(
        'PYTHONPATH', '')
    full_env.update(env)
    proc = subprocess.run([sys.executable] + list(args), cwd=cwd,
                          env=full_env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    if proc.returncode != 0:
        start = proc.stdout.rfind('Traceback (most recent call last)')
        shown = proc.stdout[start:] if start >= 0 else proc.stdout[-6000:]
        raise AssertionError(
            f'{" ".join(map(str, args))} exited {proc.returncode}:\n'
            f'{shown[-8000:]}')
    return proc.stdout


def export_student(checkpoint, out_dir):
    """tools/model_converters/export_student.py, called in this process."""
    path = osp.join(REPO_ROOT, 'tools', 'model_converters',
                    'export_student.py')
    spec = importlib.util.spec_from_file_location('export_student', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool.export_student(checkpoint, out_dir)


def logged_test_metrics(work_dir):
    """Metrics of a test.py run, from the json file its logger wrote."""
    files = glob.glob(osp.join(work_dir, '*', '*.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return json.loads(f.readline())


def check_distill_training(work_dir, loss_keys, task_loss, val_metric):
    """Distillation and task losses logged at every iteration, the student
    and (once) the teacher validated, a checkpoint of the student written;
    returns the last validation log."""
    logs = scalars(work_dir)
    train_logs = [x for x in logs if loss_keys[0] in x]
    assert len(train_logs) == ITERS, logs
    for log in train_logs:
        values = [log[k] for k in loss_keys]
        assert all(math.isfinite(v) and v >= 0 for v in values), log
        assert sum(values) > 0, log
        assert math.isfinite(log[task_loss]), log
    val_logs = [x for x in logs if val_metric in x]
    assert val_logs, f'no {val_metric} in the logs'
    assert f'teacher.{val_metric}' in val_logs[-1], val_logs[-1]

    checkpoint = osp.join(work_dir, f'iter_{ITERS}.pth')
    state = torch.load(checkpoint, map_location='cpu',
                       weights_only=True)['state_dict']
    assert any(k.startswith('architecture.') for k in state)
    assert not any(k.startswith('teacher') for k in state)
    return val_logs[-1]


# ----------------------------------------------------------------------
# Segmentation: mmseg's tools, MMSegInferencer
# ----------------------------------------------------------------------
@pytest.fixture(scope='module')
def seg_train(tmp_path_factory, toy_env, toy_teacher_ckpt):
    cwd = tmp_path_factory.mktemp('mmseg_train')
    work_dir = str(cwd / 'work_dir')
    run_python([openmmlab_tool('mmseg', 'train.py'), toy_config(SEG_CONFIG),
                '--work-dir', work_dir, '--cfg-options',
                f'model.teacher_ckpt={toy_teacher_ckpt}'] +
               quick_train_options(iters=ITERS, batch=2),
               cwd=cwd, env=toy_env)
    return work_dir


@pytest.fixture(scope='module')
def seg_test(seg_train, tmp_path_factory, toy_env, toy_teacher_ckpt):
    """mmseg's test.py on the distillation checkpoint; ``--out`` writes the
    predicted label maps as PNGs."""
    cwd = tmp_path_factory.mktemp('mmseg_test')
    work_dir, pred_dir = str(cwd / 'work_dir'), str(cwd / 'preds')
    run_python([openmmlab_tool('mmseg', 'test.py'), toy_config(SEG_CONFIG),
                osp.join(seg_train, f'iter_{ITERS}.pth'), '--work-dir',
                work_dir, '--out', pred_dir, '--cfg-options',
                f'model.teacher_ckpt={toy_teacher_ckpt}',
                'test_dataloader.batch_size=4'],
               cwd=cwd, env=toy_env)
    return work_dir, pred_dir


@pytest.mark.slow
def test_mmseg_train_runs_a_distillation_config(seg_train):
    check_distill_training(seg_train, ['distill.loss_cwd'],
                           'student.decode.loss_ce', 'mIoU')


@pytest.mark.slow
def test_mmseg_test_reports_the_students_miou(seg_train, seg_test):
    work_dir, pred_dir = seg_test
    val_log = check_distill_training(seg_train, ['distill.loss_cwd'],
                                     'student.decode.loss_ce', 'mIoU')
    results = logged_test_metrics(work_dir)
    # Same student weights, same images: the same mIoU as the validation at
    # the end of training (a student left at its initialisation, or the
    # teacher, would score differently).
    assert 0 <= results['mIoU'] <= 100
    assert results['mIoU'] == pytest.approx(val_log['mIoU'], abs=1e-6)
    assert 'teacher.mIoU' not in results
    assert len(glob.glob(osp.join(pred_dir, '*.png'))) == NUM_VAL_IMAGES


@pytest.mark.slow
def test_mmseg_inferencer_runs_the_exported_student(seg_train, seg_test,
                                                    tmp_path, toy_data_root):
    _, pred_dir = seg_test
    export_dir = str(tmp_path / 'export')
    export_student(osp.join(seg_train, f'iter_{ITERS}.pth'), export_dir)
    out = run_python(['-c', SEG_INFERENCE, export_dir,
                      osp.join(toy_data_root, 'img_dir', 'val'), pred_dir],
                     cwd=tmp_path, env={})
    report = json.loads(out[out.rindex('REPORT') + len('REPORT'):])
    assert not report['mmstructkd_imported']
    assert tuple(report['classes']) == CLASSES
    assert len(report['images']) == NUM_VAL_IMAGES, report
    for name, image in report['images'].items():
        assert image['shape'] == [64, 64], (name, image)
        assert set(image['labels']) <= set(range(len(CLASSES))), image
        # The plain student predicts what the distillation checkpoint
        # predicted under mmseg's test.py.
        assert image['same_as_test'], (name, image)
    assert report['other_size'] == [96, 80]


# Runs in a fresh process: plain mmseg, never mmstructkd.
SEG_INFERENCE = '''
import glob, json, os.path as osp, sys
import numpy as np
from PIL import Image
from mmseg.apis import MMSegInferencer

export_dir, image_dir, pred_dir = sys.argv[1:4]
inferencer = MMSegInferencer(
    model=osp.join(export_dir, 'student.py'),
    weights=osp.join(export_dir, 'student.pth'), device='cpu')
report = dict(classes=list(inferencer.model.dataset_meta['classes']),
              images={})
for path in sorted(glob.glob(osp.join(image_dir, '*.png'))):
    pred = inferencer(path, return_datasamples=True).pred_sem_seg.data[0]
    pred = pred.numpy()
    name = osp.splitext(osp.basename(path))[0]
    by_test = np.array(Image.open(osp.join(pred_dir, name + '.png')))
    report['images'][name] = dict(
        shape=list(pred.shape), labels=sorted(set(pred.ravel().tolist())),
        same_as_test=bool(pred.shape == by_test.shape and
                          (pred == by_test).all()))
# A picture of another size is predicted in its own frame.
img = (np.random.RandomState(0).rand(96, 80, 3) * 255).astype(np.uint8)
pred = inferencer(img, return_datasamples=True).pred_sem_seg.data[0]
report['other_size'] = list(pred.shape)
report['mmstructkd_imported'] = any(
    name.split('.')[0] == 'mmstructkd' for name in sys.modules)
print('REPORT' + json.dumps(report))
'''


# ----------------------------------------------------------------------
# Detection: mmdet's tools, DetInferencer
# ----------------------------------------------------------------------
@pytest.fixture(scope='module')
def det_teacher_ckpt(tmp_path_factory):
    """A randomly initialised toy RetinaNet teacher, saved as a Runner would
    (the tests check the wiring, not accuracy)."""
    import mmdet.models  # noqa: F401  (fills mmdet's registry)
    from mmdet.registry import MODELS as MMDET_MODELS
    cfg = Config.fromfile(toy_config(DET_TEACHER))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MMDET_MODELS.build(cfg.model)
    path = str(tmp_path_factory.mktemp('retinanet_teacher') / 'teacher.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


@pytest.fixture(scope='module')
def det_train(tmp_path_factory, toy_env, det_teacher_ckpt):
    cwd = tmp_path_factory.mktemp('mmdet_train')
    work_dir = str(cwd / 'work_dir')
    run_python([openmmlab_tool('mmdet', 'train.py'), toy_config(DET_CONFIG),
                '--work-dir', work_dir, '--cfg-options',
                f'model.teacher_ckpt={det_teacher_ckpt}'] +
               quick_train_options(iters=ITERS, batch=2),
               cwd=cwd, env=toy_env)
    return work_dir


@pytest.fixture(scope='module')
def det_test(det_train, tmp_path_factory, toy_env, det_teacher_ckpt):
    """mmdet's test.py on the distillation checkpoint; ``--out`` dumps the
    predictions."""
    cwd = tmp_path_factory.mktemp('mmdet_test')
    work_dir, preds = str(cwd / 'work_dir'), str(cwd / 'preds.pkl')
    run_python([openmmlab_tool('mmdet', 'test.py'), toy_config(DET_CONFIG),
                osp.join(det_train, f'iter_{ITERS}.pth'), '--work-dir',
                work_dir, '--out', preds, '--cfg-options',
                f'model.teacher_ckpt={det_teacher_ckpt}',
                'test_dataloader.batch_size=4'],
               cwd=cwd, env=toy_env)
    return work_dir, preds


DET_LOSSES = [f'distill.loss_cwd_fpn{i}' for i in range(5)]


@pytest.mark.slow
def test_mmdet_train_runs_a_distillation_config(det_train):
    check_distill_training(det_train, DET_LOSSES, 'student.loss_cls',
                           'coco/bbox_mAP')


@pytest.mark.slow
def test_mmdet_test_reports_coco_metrics(det_train, det_test):
    work_dir, preds = det_test
    val_log = check_distill_training(det_train, DET_LOSSES,
                                     'student.loss_cls', 'coco/bbox_mAP')
    results = logged_test_metrics(work_dir)
    assert 0 <= results['coco/bbox_mAP'] <= 1, results
    assert results['coco/bbox_mAP'] == pytest.approx(
        val_log['coco/bbox_mAP'], abs=1e-6)
    assert not any(k.startswith('teacher.') for k in results)
    with open(preds, 'rb') as f:
        dumped = pickle.load(f)
    assert len(dumped) == NUM_VAL_IMAGES
    assert all(d['pred_instances']['bboxes'].shape[1] == 4 for d in dumped)


# A detector trained for a few iterations scores every anchor at its prior,
# 0.01 +- 1e-6, so which 100 of them are kept, and in which order, is decided
# by float rounding that differs between a batch of 4 (test.py) and of 1 (the
# inferencer). Scaling its classifier's weights spreads the scores as training
# would (top scores 0.1-0.4, neighbours 1e-4 apart) without changing what is
# compared: the exported student must predict what the checkpoint predicts.
SHARPEN = {'architecture.bbox_head.retina_cls.weight': 300.0}
SCORE_TOL = 1e-4  # far above the rounding differences seen (about 1e-8)


@pytest.fixture(scope='module')
def det_sharp(det_train, tmp_path_factory, toy_env, det_teacher_ckpt):
    """The trained checkpoint with a sharpened classifier, and mmdet's
    test.py predictions of it (``--out``)."""
    cwd = tmp_path_factory.mktemp('mmdet_sharp')
    checkpoint = torch.load(osp.join(det_train, f'iter_{ITERS}.pth'),
                            map_location='cpu', weights_only=True)
    for key, factor in SHARPEN.items():
        checkpoint['state_dict'][key] *= factor
    sharp_ckpt, preds = str(cwd / 'sharp.pth'), str(cwd / 'preds.pkl')
    torch.save(checkpoint, sharp_ckpt)
    run_python([openmmlab_tool('mmdet', 'test.py'), toy_config(DET_CONFIG),
                sharp_ckpt, '--work-dir', str(cwd / 'work_dir'), '--out',
                preds, '--cfg-options',
                f'model.teacher_ckpt={det_teacher_ckpt}',
                'test_dataloader.batch_size=4'],
               cwd=cwd, env=toy_env)
    return sharp_ckpt, preds


def box_iou(a, b):
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4)."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).prod(-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def unmatched_detections(reference, other):
    """Detections of ``reference`` that ``other`` does not reproduce.

    Each is a dict of ``bboxes`` (N, 4), ``scores`` (N,) and ``labels``
    (N,). Only *stable* detections of ``reference`` are required: those
    scoring more than ``SCORE_TOL`` above its lowest kept score, which a
    rounding difference cannot push out of the top ``max_per_img``. Each
    must have a detection in ``other`` with the same label, IoU >= 0.999 and
    a score within 1e-5. Returns (number of stable detections, the
    unmatched ones).
    """
    boxes, scores, labels = (torch.as_tensor(reference[k])
                             for k in ('bboxes', 'scores', 'labels'))
    o_boxes, o_scores, o_labels = (torch.as_tensor(other[k])
                                   for k in ('bboxes', 'scores', 'labels'))
    if len(scores) == 0:
        return 0, []
    stable = (scores > scores.min() + SCORE_TOL).nonzero().flatten()
    if len(o_boxes) == 0:
        return len(stable), stable.tolist()
    iou = box_iou(boxes[stable], o_boxes)
    same = (labels[stable, None] == o_labels[None, :]) & (iou >= 0.999) & (
        (scores[stable, None] - o_scores[None, :]).abs() < 1e-5)
    return len(stable), stable[~same.any(1)].tolist()


def test_unmatched_detections_finds_a_changed_prediction():
    ref = dict(bboxes=[[0, 0, 10, 10], [20, 20, 30, 30], [5, 5, 9, 9]],
               scores=[0.5, 0.3, 0.01], labels=[0, 1, 0])
    same = dict(bboxes=[[20, 20, 30, 30], [0, 0, 10, 10]],
                scores=[0.3, 0.5], labels=[1, 0])
    # Order does not matter; the lowest-scoring one is not stable.
    assert unmatched_detections(ref, same) == (2, [])
    moved = dict(same, bboxes=[[20, 20, 30, 30], [0, 0, 10, 12]])
    relabelled = dict(same, labels=[1, 1])
    rescored = dict(same, scores=[0.3, 0.49])
    for changed in (moved, relabelled, rescored):
        assert unmatched_detections(ref, changed) == (2, [0])


@pytest.mark.slow
def test_mmdet_inferencer_runs_the_exported_student(det_sharp, tmp_path):
    sharp_ckpt, preds = det_sharp
    export_dir = str(tmp_path / 'export')
    export_student(sharp_ckpt, export_dir)
    out = run_python(['-c', DET_INFERENCE, export_dir, preds], cwd=tmp_path,
                     env={})
    report = json.loads(out[out.rindex('REPORT') + len('REPORT'):])
    assert not report['mmstructkd_imported']
    assert tuple(report['classes']) == THING_CLASSES
    assert len(report['images']) == NUM_VAL_IMAGES
    with open(preds, 'rb') as f:
        by_test = pickle.load(f)
    # The plain student predicts what the distillation checkpoint predicted
    # under mmdet's test.py: the same boxes, scores and labels, compared as
    # sets (both ways) so that near-tied scores may come in either order.
    num_stable = 0
    for got, expected in zip(report['images'], by_test):
        expected = expected['pred_instances']
        assert len(got['scores']) == len(expected['scores'])
        for reference, other in ((expected, got), (got, expected)):
            stable, unmatched = unmatched_detections(reference, other)
            assert not unmatched, (expected['img_path'] if 'img_path' in
                                   expected else '', unmatched)
            num_stable += stable
    # Most detections are compared (not a check of an empty set).
    assert num_stable >= NUM_VAL_IMAGES * 2 * 50, num_stable


# Runs in a fresh process: plain mmdet, never mmstructkd.
DET_INFERENCE = '''
import json, os.path as osp, pickle, sys
from mmdet.apis import DetInferencer

export_dir, preds_file = sys.argv[1:3]
inferencer = DetInferencer(
    model=osp.join(export_dir, 'student.py'),
    weights=osp.join(export_dir, 'student.pth'), device='cpu')
with open(preds_file, 'rb') as f:
    by_test = pickle.load(f)
report = dict(classes=list(inferencer.model.dataset_meta['classes']),
              images=[])
for expected in by_test:
    result = inferencer(expected['img_path'], return_datasamples=True)
    got = result['predictions'][0].pred_instances
    report['images'].append(
        {k: got[k].tolist() for k in ('bboxes', 'scores', 'labels')})
report['mmstructkd_imported'] = any(
    name.split('.')[0] == 'mmstructkd' for name in sys.modules)
print('REPORT' + json.dumps(report))
'''
