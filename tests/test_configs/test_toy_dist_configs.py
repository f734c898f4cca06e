"""The toy DIST configs build (random weights, no teacher checkpoint) and one
training step logs exactly their distillation losses, finite and positive;
the detection config feeds each FPN level's classification logits of the
teacher's head to its own loss."""
import math

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

import mmstructkd  # noqa: F401
from mmstructkd.benchmarks.random_batches import det_batch, seg_batch
from mmstructkd.models.losses import DISTLoss
from mmstructkd.registry import MODELS

from conftest import toy_config

SEG = 'dist_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'
DET = ('dist_cls_retinanet-r34-thin32_retinanet-r18-thin16_1xb8-2k_'
       'toyscenes-64x64.py')


def build(name):
    cfg = Config.fromfile(toy_config(name))
    cfg.model.teacher_ckpt = None
    return cfg, MODELS.build(cfg.model)


def one_step(cfg, model, batch):
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    torch.manual_seed(0)
    return model.train_step(batch, wrapper)


def check_distill_logs(log_vars, expected):
    distill = {k: float(torch.as_tensor(v).detach())
               for k, v in log_vars.items()
               if k.startswith('distill.')}
    assert set(distill) == set(expected), sorted(log_vars)
    # Random student and teacher disagree; each value lies in (0, 4].
    assert all(math.isfinite(v) and 0 < v <= 4 for v in distill.values()), \
        distill


def test_toy_seg_config_distils_the_decode_logits():
    cfg, model = build(SEG)
    assert model.teacher_forward_mode == 'tensor'
    loss = model.distiller.distill_losses['loss_dist']
    assert isinstance(loss, DISTLoss)
    assert (loss.tau, loss.inter_weight, loss.intra_weight,
            loss.loss_weight) == (1, 1, 1, 1)
    log_vars = one_step(cfg, model, seg_batch(2, (64, 64), num_classes=5,
                                              seed=0))
    check_distill_logs(log_vars, {'distill.loss_dist'})


def test_toy_det_config_distils_each_level_of_the_cls_head():
    cfg, model = build(DET)
    # The teacher's head must run: its cls logits are recorded.
    assert model.teacher_forward_mode == 'tensor'
    shapes = {}

    def spy(name):
        def hook(module, args, kwargs, output):
            shapes.setdefault(name, []).append(
                (tuple(kwargs['preds_S'].shape),
                 tuple(kwargs['preds_T'].shape)))
        return hook

    for i in range(5):
        model.distiller.distill_losses[f'loss_dist_cls{i}'] \
            .register_forward_hook(spy(i), with_kwargs=True)
        assert model.distiller.distill_losses[
            f'loss_dist_cls{i}'].num_classes == 3
    log_vars = one_step(cfg, model, det_batch(2, (64, 64), num_classes=3,
                                              seed=0, num_boxes=3))
    check_distill_logs(log_vars, {f'distill.loss_dist_cls{i}'
                                  for i in range(5)})
    # Level i (stride 4 * 2**i of a 64x64 input): 9 anchors x 3 classes,
    # the same size for student and teacher.
    for i in range(5):
        side = 64 // (4 * 2**i)
        assert shapes[i] == [((2, 27, side, side), (2, 27, side, side))], \
            (i, shapes[i])

