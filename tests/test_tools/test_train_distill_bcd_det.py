"""BCD for object detection (RetinaNet) and instance segmentation (Mask
R-CNN) on the toy COCO set, through tools/train.py, evaluated by CocoMetric."""
import math
import os.path as osp

import pytest

from conftest import run_tool, scalars, toy_config

CASES = {
    'detection': ('retinanet_r34-thin32_fpn_1xb8-2k_toyscenes-64x64.py',
                  'bcd_retinanet-r34-thin32_retinanet-r18-thin16_1xb8-2k_'
                  'toyscenes-64x64.py', ['coco/bbox_mAP']),
    'instance': ('mask-rcnn_r34-thin32_fpn_1xb8-2k_toyscenes-64x64.py',
                 'bcd_mask-rcnn-r34-thin32_mask-rcnn-r18-thin16_1xb8-2k_'
                 'toyscenes-64x64.py', ['coco/bbox_mAP', 'coco/segm_mAP']),
}
QUICK = ['train_dataloader.batch_size=2', 'val_dataloader.batch_size=4',
         'default_hooks.logger.interval=1']


@pytest.mark.slow
@pytest.mark.parametrize('task', sorted(CASES))
def test_bcd_detection_tasks_train_and_evaluate(task, tmp_path, toy_env):
    teacher_cfg, bcd_cfg, metrics = CASES[task]
    teacher_dir = str(tmp_path / 'teacher')
    run_tool(['tools/train.py', toy_config(teacher_cfg), '--work-dir',
              teacher_dir, '--cfg-options', 'train_cfg.max_iters=1',
              'train_cfg.val_interval=1',
              'default_hooks.checkpoint.interval=1'] + QUICK, env=toy_env)
    work_dir = str(tmp_path / 'bcd')
    iters = 2
    run_tool(['tools/train.py', toy_config(bcd_cfg), '--work-dir', work_dir,
              '--cfg-options',
              f'model.teacher_ckpt={osp.join(teacher_dir, "iter_1.pth")}',
              f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
              f'default_hooks.checkpoint.interval={iters}'] + QUICK,
             env=toy_env)
    logs = scalars(work_dir)
    train = [x for x in logs if 'distill.loss_boundary' in x]
    assert len(train) == iters
    for entry in train:
        for key in ('distill.loss_boundary', 'distill.loss_context'):
            assert math.isfinite(entry[key]) and entry[key] >= 0, key
    val = [x for x in logs if metrics[0] in x]
    assert val
    for metric in metrics:
        assert metric in val[-1] and f'teacher.{metric}' in val[-1]
