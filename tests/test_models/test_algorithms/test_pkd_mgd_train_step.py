"""PKD and MGD wired into SingleTeacherDistill with the toy RetinaNet and
Faster R-CNN configs: one training step with random weights each, finite
losses on every FPN level, and gradients in the connectors."""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from mmstructkd.models.connectors import MGDConnector
from mmstructkd.registry import MODELS
from mmstructkd.benchmarks.random_batches import det_batch

TOY = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))),
    'configs', 'toy')
PKD_RETINANET = ('pkd_fpn_retinanet-r34-thin32_retinanet-r18-thin16_1xb8-2k_'
                 'toyscenes-64x64.py')
PKD_FASTER_RCNN = ('pkd_fpn_faster-rcnn-r34-thin32_faster-rcnn-r18-thin16_'
                   '1xb8-2k_toyscenes-64x64.py')
MGD_RETINANET = ('mgd_fpn_retinanet-r34-thin32_retinanet-r18-thin16_1xb8-2k_'
                 'toyscenes-64x64.py')


def build(config):
    cfg = Config.fromfile(osp.join(TOY, config))
    cfg.model.teacher_ckpt = None  # random teacher weights
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


def step_with_connector_grads(model, wrapper):
    """One train step; the connectors' gradients, read before the
    optimizer zeroes them."""
    grads = {}

    def keep_grads(*args, **kwargs):
        grads.update({
            name: p.grad.detach().clone() if p.grad is not None else None
            for name, p in model.distiller.connectors.named_parameters()
        })
        return original_step(*args, **kwargs)

    original_step = wrapper.step
    wrapper.step = keep_grads
    model.train()
    log_vars = model.train_step(det_batch(2, (64, 64), num_classes=3, seed=0, num_boxes=3), wrapper)
    return log_vars, grads


@pytest.mark.parametrize('config,num_connector_params', [
    (PKD_RETINANET, 0), (PKD_FASTER_RCNN, 2)])
def test_pkd_train_step_on_five_fpn_levels(config, num_connector_params):
    model, wrapper = build(config)
    assert model.teacher_forward_mode == 'feat'
    log_vars, grads = step_with_connector_grads(model, wrapper)
    keys = [f'distill.loss_pkd_fpn{i}' for i in range(5)]
    assert set(keys) <= set(log_vars)
    values = [float(log_vars[k].detach()) if torch.is_tensor(log_vars[k])
              else float(log_vars[k]) for k in keys]
    assert all(math.isfinite(v) and v >= 0 for v in values), values
    # Random student and teacher FPNs are far from correlated.
    assert sum(values) > 0
    assert len(grads) == num_connector_params
    for name, grad in grads.items():
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, name


def test_mgd_train_step_trains_every_level_connector_and_saves_masks():
    model, wrapper = build(MGD_RETINANET)
    connectors = model.distiller.connectors
    assert len(connectors) == 5
    assert all(isinstance(c, MGDConnector) for c in connectors.values())
    state_before = model.state_dict()
    log_vars, grads = step_with_connector_grads(model, wrapper)
    keys = [f'distill.loss_mgd_fpn{i}' for i in range(5)]
    assert set(keys) <= set(log_vars)
    values = [float(log_vars[k].detach()) if torch.is_tensor(log_vars[k])
              else float(log_vars[k]) for k in keys]
    assert all(math.isfinite(v) and v > 0 for v in values), values
    for i in range(5):
        level = {k: g for k, g in grads.items()
                 if k.startswith(f'mgd_fpn{i}.generation')}
        assert len(level) == 4  # two convolutions: weights and biases
        for name, grad in level.items():
            assert grad is not None and torch.isfinite(grad).all(), name
            # P6 is 1x1 here: with 2 images, both positions are masked with
            # probability 0.65^2, and then the first conv gets no gradient.
            assert i == 4 or grad.abs().sum() > 0, name
        assert grads[f'mgd_fpn{i}.generation.2.bias'].abs().sum() > 0
    # The generators' states are in the checkpointed state_dict (only the
    # student and the distiller's modules: not the teacher) and advanced.
    state = model.state_dict()
    for i in range(5):
        key = f'distiller.connectors.mgd_fpn{i}._extra_state'
        assert key in state and state[key].dtype == torch.uint8
        assert not torch.equal(state[key], state_before[key])
    assert not any(k.startswith('teacher') for k in state)
