"""FBKD wired into SingleTeacherDistill with the toy Faster R-CNN config: one
training step with random weights, finite losses on every FPN level, and
gradients in both connectors of every level (student adaptations, both
non-local blocks)."""
import math
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from mmstructkd.models.connectors import (FBKDStudentConnector,
                                          FBKDTeacherConnector)
from mmstructkd.registry import MODELS
from mmstructkd.benchmarks.random_batches import det_batch

TOY = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))),
    'configs', 'toy')
FBKD_FASTER_RCNN = ('fbkd_fpn_faster-rcnn-r34-thin32_faster-rcnn-r18-thin16_'
                    '1xb8-2k_toyscenes-64x64.py')


def test_fbkd_train_step_on_five_fpn_levels():
    cfg = Config.fromfile(osp.join(TOY, FBKD_FASTER_RCNN))
    cfg.model.teacher_ckpt = None  # random teacher weights
    model = MODELS.build(cfg.model)
    model.init_weights()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    connectors = model.distiller.connectors
    assert len(connectors) == 10
    for i in range(5):
        assert isinstance(connectors[f'fbkd_fpn{i}_s'], FBKDStudentConnector)
        assert isinstance(connectors[f'fbkd_fpn{i}_t'], FBKDTeacherConnector)

    grads = {}
    original_step = wrapper.step

    def keep_grads(*args, **kwargs):
        # Read before the optimizer zeroes them.
        grads.update({
            name: p.grad.detach().clone() if p.grad is not None else None
            for name, p in connectors.named_parameters()
        })
        return original_step(*args, **kwargs)

    wrapper.step = keep_grads
    model.train()
    log_vars = model.train_step(det_batch(2, (64, 64), num_classes=3, seed=0, num_boxes=3), wrapper)
    keys = [f'distill.loss_fbkd_fpn{i}' for i in range(5)]
    assert set(keys) <= set(log_vars)
    values = [float(log_vars[k].detach()) if torch.is_tensor(log_vars[k])
              else float(log_vars[k]) for k in keys]
    assert all(math.isfinite(v) and v > 0 for v in values), values
    assert grads and all(g is not None and torch.isfinite(g).all()
                         for g in grads.values())
    for i in range(5):
        for part in ('adaptation_layers', 'channel_wise_adaptation',
                     'spatial_wise_adaptation', 'non_local_adaptation',
                     'non_local.conv_out'):
            level = {k: g for k, g in grads.items()
                     if k.startswith(f'fbkd_fpn{i}_s.{part}')}
            assert level and any(g.abs().sum() > 0 for g in level.values()), (
                i, part)
        # The teacher-side non-local block is trained by the relation term.
        teacher = {k: g for k, g in grads.items()
                   if k.startswith(f'fbkd_fpn{i}_t.non_local.conv_out')}
        assert teacher and any(g.abs().sum() > 0 for g in teacher.values())
    # The teacher network itself gets nothing.
    assert all(p.grad is None for p in model.teacher.parameters())
