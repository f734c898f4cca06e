"""End to end for detection: train the toy detector teachers, distil them
into the toy students with tools/train.py (CWD, SKD pair-wise and SSIM on
every FPN level), validate with mmdet's CocoMetric, export the student and
load it with plain mmdet.

Also checks, in this process, that FPN-only distillation runs the teacher's
backbone and neck only (``teacher_forward_mode == 'feat'``: no head call).
"""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

import mmstructkd  # noqa: F401  (weights-only loading of Runner checkpoints)
# Registers StructuralSimilarityLoss even before the package exports it.
import mmstructkd.models.losses.ssim  # noqa: F401
from mmstructkd.registry import MODELS
from mmstructkd.benchmarks.random_batches import det_batch

from conftest import (REPO_ROOT, last_checkpoint, quick_train_options,
                      run_tool, scalars, toy_config)

TEACHERS = {
    'retinanet': 'retinanet_r34-thin32_fpn_1xb8-2k_toyscenes-64x64.py',
    'faster-rcnn': 'faster-rcnn_r34-thin32_fpn_1xb8-2k_toyscenes-64x64.py',
}
TOY_CLASSES = ('car', 'person', 'sign')


class Case:
    """A toy detection distillation config and what a run of it must log."""

    def __init__(self, config, teacher, detector, loss_keys,
                 teacher_heads, connector=None):
        self.config = config
        self.teacher = teacher
        self.detector = detector
        self.loss_keys = loss_keys
        # Layers of the teacher's heads, which must NOT run when only the
        # FPN is distilled. Layers, not the heads themselves: detectors call
        # head methods (``bbox_head.forward``, ``rpn_head.predict``) directly,
        # which forward hooks on the head module do not see.
        self.teacher_heads = teacher_heads
        self.connector = connector


CASES = {
    'cwd': Case(
        'cwd_fpn_retinanet-r34-thin32_retinanet-r18-thin16_1xb8-2k_'
        'toyscenes-64x64.py', 'retinanet', 'RetinaNet',
        [f'distill.loss_cwd_fpn{i}' for i in range(5)],
        ['bbox_head.retina_cls']),
    'skd': Case(
        'skd_pa-fpn_retinanet-r34-thin32_retinanet-r18-thin16_1xb8-2k_'
        'toyscenes-64x64.py', 'retinanet', 'RetinaNet',
        ['distill.loss_pa_fpn'], ['bbox_head.retina_cls']),
    'ssim': Case(
        'ssim_fpn_faster-rcnn-r34-thin32_faster-rcnn-r18-thin16_1xb8-2k_'
        'toyscenes-64x64.py', 'faster-rcnn', 'FasterRCNN',
        ['distill.loss_ssim_fpn'], ['rpn_head.rpn_conv', 'roi_head.bbox_head'],
        connector='fpn_adapter'),
}

# The detection proxy's GFL pair (96x96): built and stepped in this process
# only; the tools path is the same as the RetinaNet cases'.
PROXY_CASES = {
    'cwd-gfl': Case(
        'cwd_fpn_gfl-r34-thin32_gfl-r18-thin16_1xb8-2k_toyscenes-det-'
        '96x96.py', 'gfl', 'GFL',
        [f'distill.loss_cwd_fpn{i}' for i in range(5)],
        ['bbox_head.gfl_cls']),
    'pkd-gfl': Case(
        'pkd_fpn_gfl-r34-thin32_gfl-r18-thin16_1xb8-2k_toyscenes-det-'
        '96x96.py', 'gfl', 'GFL',
        [f'distill.loss_pkd_fpn{i}' for i in range(4)],
        ['bbox_head.gfl_cls']),
}


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory, toy_env):
    """Train each toy teacher once per module (2 iterations, no
    validation), on first use; return its checkpoint."""
    ckpts = {}

    def get(name):
        if name not in ckpts:
            work_dir = str(tmp_path_factory.mktemp(f'{name}_teacher'))
            run_tool(['tools/train.py', toy_config(TEACHERS[name]),
                      '--work-dir', work_dir, '--cfg-options'] +
                     quick_train_options(iters=2, batch=2) +
                     ['train_cfg.val_interval=1000'],
                     env=toy_env)
            ckpts[name] = last_checkpoint(work_dir)
        return ckpts[name]

    return get


# ----------------------------------------------------------------------
# In this process: the teacher runs only as far as the FPN
# ----------------------------------------------------------------------
def count_calls(model, names):
    counts = {name: 0 for name in names}
    for name in names:
        def hook(module, args, output, name=name):
            counts[name] += 1
        model.get_submodule(name).register_forward_hook(hook)
    return counts


@pytest.mark.parametrize('case', sorted(CASES) + sorted(PROXY_CASES))
def test_fpn_distillation_runs_no_teacher_head(case):
    size = (96, 96) if case in PROXY_CASES else (64, 64)
    case = CASES.get(case) or PROXY_CASES[case]
    cfg = Config.fromfile(toy_config(case.config))
    cfg.model.teacher_ckpt = None
    model = MODELS.build(cfg.model)
    assert model.teacher_forward_mode == 'feat'
    assert type(model.teacher).__name__ == case.detector
    calls = count_calls(model.teacher, ['neck'] + case.teacher_heads)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    log_vars = model.train_step(
        det_batch(2, size, num_classes=3, seed=0, num_boxes=3), wrapper)
    assert set(case.loss_keys) <= set(log_vars)
    # (CWD on a 1x1 level, P6 of a 64x64 input, is 0 by definition.)
    values = [float(log_vars[key]) for key in case.loss_keys]
    assert all(math.isfinite(v) and v >= 0 for v in values) and \
        sum(values) > 0, values
    assert calls == dict({'neck': 1}, **{h: 0 for h in case.teacher_heads})

    # The check can fail: in 'tensor' mode the teacher's head runs too
    # (for Faster R-CNN the RPN and the RoI head), once per FPN level for
    # shared heads.
    model.teacher_forward_mode = 'tensor'
    model.train_step(
        det_batch(2, size, num_classes=3, seed=0, num_boxes=3), wrapper)
    assert calls['neck'] == 2
    assert all(calls[h] > 0 for h in case.teacher_heads), calls


# ----------------------------------------------------------------------
# Through the tools: train, validate with CocoMetric, export, load in mmdet
# ----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize('case', sorted(CASES))
def test_det_distill_trains_validates_and_exports(case, tmp_path, toy_env,
                                                  teacher_ckpt):
    case = CASES[case]
    iters = 2
    work_dir = str(tmp_path / 'distill')
    run_tool(['tools/train.py', toy_config(case.config), '--work-dir',
              work_dir, '--cfg-options',
              f'model.teacher_ckpt={teacher_ckpt(case.teacher)}'] +
             quick_train_options(iters=iters, batch=2),
             env=toy_env)

    logs = scalars(work_dir)
    train_logs = [x for x in logs if case.loss_keys[0] in x]
    assert len(train_logs) == iters
    for log in train_logs:
        values = [log[k] for k in case.loss_keys]
        assert all(math.isfinite(v) and v >= 0 for v in values), log
        assert sum(values) > 0, log
        assert 'student.loss_cls' in log and math.isfinite(
            log['student.loss_cls'])
    # Validation with mmdet's CocoMetric, for the student and, once, for
    # the teacher (a wrongly loaded teacher shows there).
    val_logs = [x for x in logs if 'coco/bbox_mAP' in x]
    assert val_logs, 'no CocoMetric results in the logs'
    for key in ('coco/bbox_mAP', 'teacher.coco/bbox_mAP'):
        assert 0.0 <= val_logs[-1][key] <= 1.0, (key, val_logs[-1])

    ckpt_path = last_checkpoint(work_dir)
    ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=True)
    keys = list(ckpt['state_dict'])
    assert any(k.startswith('architecture.neck.') for k in keys)
    # The frozen teacher is rebuilt from teacher_ckpt, never saved.
    assert not any(k.startswith('teacher') for k in keys)
    connector_keys = [k for k in keys if k.startswith('distiller.connectors')]
    if case.connector:  # trained with the student, dropped at export
        assert any(f'.{case.connector}.' in k for k in connector_keys)
    else:
        assert not connector_keys

    export_dir = str(tmp_path / 'export')
    run_tool(['tools/model_converters/export_student.py', ckpt_path,
              export_dir])
    # A fresh process that never imports mmstructkd loads the student with
    # plain mmdet, without missing or unexpected keys, and runs inference.
    check = f'''
import sys, torch, numpy as np
from mmdet.apis import inference_detector, init_detector
model = init_detector("{export_dir}/student.py", None, device="cpu")
state = torch.load("{export_dir}/student.pth", map_location="cpu",
                   weights_only=True)["state_dict"]
result = model.load_state_dict(state, strict=True)
assert not result.missing_keys and not result.unexpected_keys, result
model = init_detector("{export_dir}/student.py", "{export_dir}/student.pth",
                      device="cpu")
assert tuple(model.dataset_meta["classes"]) == {TOY_CLASSES!r}, \\
    model.dataset_meta
img = (np.random.RandomState(0).rand(96, 80, 3) * 255).astype(np.uint8)
out = inference_detector(model, img)
boxes = out.pred_instances.bboxes
assert boxes.ndim == 2 and boxes.shape[1] == 4, boxes.shape
# Boxes are in the input picture's frame (80 wide, 96 high).
assert bool((boxes[:, 2] <= 80 + 1e-3).all() and
            (boxes[:, 3] <= 96 + 1e-3).all()), boxes
assert "mmstructkd" not in sys.modules
print("STUDENT_OK", type(model).__name__, len(boxes))
'''
    proc = run_tool(['-c', check], env=toy_env)
    assert f'STUDENT_OK {case.detector}' in proc.stdout, proc.stdout[-3000:]


def test_toy_det_dataset_config_matches_the_toy_scenes():
    # The toy configs use mmdet's CocoDataset with the classes spelled out
    # (so exported students need no mmstructkd); they must stay the toy set's.
    from mmstructkd.toy_data.classes import THING_CLASSES, THING_PALETTE
    cfg = Config.fromfile(toy_config(CASES['cwd'].config))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[loader].dataset
        assert dataset.type == 'CocoDataset'
        assert tuple(dataset.metainfo.classes) == THING_CLASSES
        assert [list(c) for c in dataset.metainfo.palette] == THING_PALETTE


def test_benchmark_teacher_forward_reports_the_saving(capsys):
    import importlib.util
    path = osp.join(REPO_ROOT, 'tools', 'benchmark_teacher_forward.py')
    spec = importlib.util.spec_from_file_location('benchmark_teacher_forward',
                                                  path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    rows = tool.main(['--steps', '1', '--warmup', '0', '--batch-size', '1'])
    # The teacher's head costs FLOPs that 'feat' mode does not spend.
    assert 0 < rows['feat']['teacher_gflops'] < rows['tensor'][
        'teacher_gflops']
    for mode in ('feat', 'tensor'):
        assert rows[mode]['step']['median_ms'] > 0
    table = capsys.readouterr().out
    assert "| `'feat'` (backbone + neck) |" in table
    assert '| saving (paired median) |' in table
