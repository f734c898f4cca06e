"""End to end for CrossKD: train the toy RetinaNet (and GFL) teacher two
iterations, distil it into the toy student with tools/train.py, validate
with mmdet's CocoMetric, and export a student without the connectors."""
import math

import pytest
import torch

from conftest import (last_checkpoint, quick_train_options, run_tool,
                      scalars, toy_config)

CASES = {
    'retinanet': ('retinanet_r34-thin32_fpn_1xb8-2k_toyscenes-64x64.py',
                  'crosskd_retinanet-r34-thin32_retinanet-r18-thin16_1xb8-'
                  '2k_toyscenes-64x64.py',
                  ['distill.loss_cls_kd', 'distill.loss_box_kd']),
    'gfl': ('gfl_r34-thin32_fpn_1xb8-2k_toyscenes-det-96x96.py',
            'crosskd_gfl-r34-thin32_gfl-r18-thin16_1xb8-2k_toyscenes-'
            'det-96x96.py',
            ['distill.loss_cls_kd', 'distill.loss_dist_kd',
             'distill.loss_box_kd']),
}


@pytest.mark.slow
@pytest.mark.parametrize('case', sorted(CASES))
def test_crosskd_trains_validates_and_exports(case, tmp_path, toy_env):
    teacher_config, config, loss_keys = CASES[case]
    teacher_dir = str(tmp_path / 'teacher')
    run_tool(['tools/train.py', toy_config(teacher_config), '--work-dir',
              teacher_dir, '--cfg-options'] +
             quick_train_options(iters=2, batch=2) +
             ['train_cfg.val_interval=1000'], env=toy_env)
    work_dir = str(tmp_path / 'distill')
    iters = 2
    run_tool(['tools/train.py', toy_config(config), '--work-dir', work_dir,
              '--cfg-options',
              f'model.teacher_ckpt={last_checkpoint(teacher_dir)}'] +
             quick_train_options(iters=iters, batch=2), env=toy_env)

    logs = scalars(work_dir)
    train_logs = [x for x in logs if loss_keys[0] in x]
    assert len(train_logs) == iters
    for log in train_logs:
        values = [log[k] for k in loss_keys]
        assert all(math.isfinite(v) and v >= 0 for v in values), log
        assert sum(values) > 0, log
        assert math.isfinite(log['student.loss_cls'])
    val_logs = [x for x in logs if 'coco/bbox_mAP' in x]
    assert val_logs and 'teacher.coco/bbox_mAP' in val_logs[-1]

    ckpt_path = last_checkpoint(work_dir)
    keys = list(torch.load(ckpt_path, map_location='cpu',
                           weights_only=True)['state_dict'])
    assert not any(k.startswith('teacher') for k in keys)
    assert any(k.startswith('distiller.connectors.cross_cls.') for k in keys)
    export_dir = str(tmp_path / 'export')
    run_tool(['tools/model_converters/export_student.py', ckpt_path,
              export_dir])
    student = torch.load(f'{export_dir}/student.pth', map_location='cpu',
                         weights_only=True)['state_dict']
    assert any(k.startswith('bbox_head.') for k in student)
    assert not any('connectors' in k or k.startswith('teacher')
                   for k in student)
