"""--amp (bf16 autocast on CPU) trains every toy distillation config."""
import glob
import json
import math
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import TOY_CONFIGS, run_tool, toy_config

DISTILL_CONFIGS = sorted(
    osp.basename(p) for p in glob.glob(osp.join(TOY_CONFIGS, '*.py'))
    if 'SingleTeacherDistill' in open(p).read() or osp.basename(p).startswith(
        ('cwd_', 'skd_', 'ssim_', 'bcd_')))
SEG_DISTILL = [c for c in DISTILL_CONFIGS if 'toyscenes.py' in c and
               'coco' not in c and 'det' not in c]



def test_seg_distill_configs_found():
    assert len(SEG_DISTILL) >= 5, SEG_DISTILL


@pytest.mark.parametrize('config', SEG_DISTILL)
def test_amp_bf16_on_cpu(config, tmp_path, toy_env, toy_teacher_ckpt):
    iters = 2
    work_dir = str(tmp_path / 'amp')
    sched = Config.fromfile(toy_config(config)).param_scheduler
    keys = list(sched) if isinstance(sched, dict) else [None]
    opts = [f'model.teacher_ckpt={toy_teacher_ckpt}',
            f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}',
            'default_hooks.logger.interval=1',
            'train_dataloader.batch_size=2', 'val_dataloader.batch_size=2'
            ] + [f'param_scheduler.{k + "." if k else ""}0.end={iters}'
                 for k in keys]
    proc = run_tool(['tools/train.py', toy_config(config), '--work-dir',
                     work_dir, '--amp', '--cfg-options'] + opts, env=toy_env)
    assert 'AutocastOptimWrapper' in proc.stdout
    logs = []
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data',
                                   'scalars.json')):
        with open(path) as f:
            logs += [json.loads(line) for line in f]
    train = [x for x in logs if 'loss' in x]
    assert len(train) == iters
    distill = [k for k in train[0] if k.startswith('distill.loss_')]
    assert distill
    for entry in train:
        for key in distill + ['loss']:
            assert math.isfinite(entry[key]) and entry[key] >= 0 or \
                key == 'distill.loss_ho', (key, entry[key])
