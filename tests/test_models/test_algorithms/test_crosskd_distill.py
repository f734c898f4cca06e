"""CrossKD wired into CrossKDDistill with the toy RetinaNet and GFL
configs (thin mmdet models, in process): the head run from a layer is the
head's own forward, a training step leaves the teacher bit-identical, the
cross-head losses alone give the student's towers gradients through the
teacher's layers, and mismatched head widths are a clear error."""
import copy
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from mmstructkd.benchmarks.random_batches import det_batch
from mmstructkd.models.algorithms.head_from_layer import (
    dense_head_layers, head_from_layer, match_channel_statistics)
from mmstructkd.registry import MODELS

TOY = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))),
    'configs', 'toy')
RETINANET = ('crosskd_retinanet-r34-thin32_retinanet-r18-thin16_1xb8-2k_'
             'toyscenes-64x64.py')
GFL = ('crosskd_gfl-r34-thin32_gfl-r18-thin16_1xb8-2k_toyscenes-'
       'det-96x96.py')
LOSSES = {
    RETINANET: ['distill.loss_cls_kd', 'distill.loss_box_kd'],
    GFL: ['distill.loss_cls_kd', 'distill.loss_dist_kd',
          'distill.loss_box_kd'],
}


def toy_cfg(config):
    cfg = Config.fromfile(osp.join(TOY, config))
    cfg.model.teacher_ckpt = None  # random teacher weights
    return cfg


def build(config, **changes):
    cfg = toy_cfg(config)
    cfg.model.update(changes)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model, cfg


def batch(seed=0):
    return det_batch(2, (64, 64), num_classes=3, seed=seed, num_boxes=3)


@pytest.mark.parametrize('config', [RETINANET, GFL])
def test_head_from_layer_is_the_heads_own_forward(config):
    model, _ = build(config)
    teacher = model.teacher
    head = teacher.bbox_head
    layers = dense_head_layers(head)
    assert (layers.scales is not None) == (config == GFL)
    data = teacher.data_preprocessor(batch(), False)
    with torch.no_grad():
        feats = teacher.extract_feat(data['inputs'])
        cls_scores, bbox_preds = head.forward(feats)
        run = head_from_layer(layers, feats, feats, 0, keep=1)
        # From layer 1 on the head's own layer-1 features: the same again.
        rerun = head_from_layer(layers, run.cls_feats, run.reg_feats, 1)
    for ours in (run, rerun):
        assert len(ours.cls_scores) == len(cls_scores) == 5
        for a, b in zip(ours.cls_scores + ours.bbox_preds,
                        list(cls_scores) + list(bbox_preds)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize('config', [RETINANET, GFL])
def test_train_step_leaves_the_teacher_bit_identical(config):
    model, cfg = build(config)
    assert type(model).__name__ == 'CrossKDDistill'
    assert model.teacher_forward_mode == 'feat'
    teacher_state = copy.deepcopy(model.teacher.state_dict())
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    connector_grads = {}
    original_step = wrapper.step

    def keep_grads(*args, **kwargs):
        connector_grads.update({
            name: p.grad.detach().clone()
            for name, p in model.distiller.connectors.named_parameters()
            if p.grad is not None})
        return original_step(*args, **kwargs)

    wrapper.step = keep_grads
    model.train()
    for seed in range(2):
        log_vars = model.train_step(batch(seed), wrapper)
        for key in LOSSES[config]:
            value = float(torch.as_tensor(log_vars[key]).detach())
            assert math.isfinite(value) and value > 0, (key, value)
        assert 'student.loss_cls' in log_vars
    # The teacher: same weights and buffers (its BN statistics too), no
    # gradient, in no optimizer.
    after = model.teacher.state_dict()
    assert set(after) == set(teacher_state)
    for key, value in teacher_state.items():
        assert torch.equal(after[key], value), key
    assert all(p.grad is None and not p.requires_grad
               for p in model.teacher.parameters())
    optimized = {id(p) for group in wrapper.optimizer.param_groups
                 for p in group['params']}
    assert not optimized & {id(p) for p in model.teacher.parameters()}
    # The connectors learn from the cross-head losses.
    assert len(connector_grads) == 4  # weight and bias of two 1x1 convs
    assert all(g.abs().sum() > 0 for g in connector_grads.values())
    # Nothing recorded outlives the step.
    for manager in (model.distiller.student_recorders,
                    model.distiller.teacher_recorders):
        assert all(not r.data_buffer for r in manager.recorders.values())


def grads_from(model, loss_key):
    """Gradients of the student's parameters from one distillation loss."""
    model.train()
    model.zero_grad()
    data = model.data_preprocessor(batch(), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert not any(k.startswith('student.') for k in losses)
    losses[loss_key].backward()
    return {name: p.grad for name, p in model.architecture.named_parameters()}


@pytest.mark.parametrize('config', [RETINANET, GFL])
def test_cross_losses_alone_train_the_students_towers(config):
    # calculate_student_loss=False (mmrazor's switch): only distill.* losses.
    model, _ = build(config, calculate_student_loss=False)
    cls_grads = grads_from(model, 'distill.loss_cls_kd')
    # The class loss reaches the student's classification tower up to layer
    # k (through the teacher's layers) and its backbone, not its box tower
    # nor its own final convs, which the cross path skips.
    assert cls_grads['bbox_head.cls_convs.0.conv.weight'].abs().sum() > 0
    assert cls_grads['backbone.conv1.weight'].abs().sum() > 0
    assert cls_grads['bbox_head.reg_convs.0.conv.weight'] is None
    assert cls_grads['bbox_head.cls_convs.1.conv.weight'] is None
    final = 'retina_cls' if config == RETINANET else 'gfl_cls'
    assert cls_grads[f'bbox_head.{final}.weight'] is None
    box_grads = grads_from(model, 'distill.loss_box_kd')
    assert box_grads['bbox_head.reg_convs.0.conv.weight'].abs().sum() > 0
    assert box_grads['bbox_head.cls_convs.0.conv.weight'] is None
    # No gradient reaches the teacher's layers that the cross path used.
    assert all(p.grad is None for p in model.teacher.parameters())


def test_student_without_distillation_step_skips_the_cross_head():
    model, cfg = build(RETINANET)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.skip_teacher_forward = True
    model.train()
    log_vars = model.train_step(batch(), wrapper)
    assert not any(k.startswith('distill.') for k in log_vars)
    assert 'student.loss_cls' in log_vars


def test_different_head_widths_without_connector_name_both_and_the_fix():
    cfg = toy_cfg(RETINANET)
    cfg.model.cross_head = dict(layer=1)
    cfg.model.distiller.pop('connectors')
    with pytest.raises(ValueError) as error:
        MODELS.build(cfg.model)
    message = str(error.value)
    for part in ('student bbox_head.feat_channels=32',
                 'teacher bbox_head.feat_channels=64',
                 "type='ConvModuleConnector', in_channel=32, "
                 'out_channel=64', "connector=('cross_cls', 'cross_reg')"):
        assert part in message, message


def test_one_connector_for_both_towers_and_at_the_fpn():
    # A single connector name serves both towers.
    model, cfg = build(RETINANET, cross_head=dict(layer=1,
                                                  connector='cross_cls'))
    assert model.cross_connectors == ('cross_cls', 'cross_cls')
    # Layer 0: the FPN levels (32 channels in both) go into the teacher's
    # head; no connector needed.
    cfg = toy_cfg(RETINANET)
    cfg.model.cross_head = dict(layer=0)
    cfg.model.distiller.pop('connectors')
    recorders = cfg.model.distiller.student_recorders
    recorders.cls_feat.source = recorders.reg_feat.source = 'neck'
    model = MODELS.build(cfg.model)
    log_vars = model.train_step(
        batch(), build_optim_wrapper(model, cfg.optim_wrapper))
    assert float(log_vars['distill.loss_cls_kd']) > 0


@pytest.mark.parametrize('change,error,match', [
    (dict(layer=3), ValueError, r'0\.\.2'),
    (dict(layer=1, colour='red'), KeyError, 'unknown keys'),
    (dict(connector='nope'), KeyError, "no connector 'nope'"),
    (dict(layer=2), KeyError, "source='bbox_head.cls_convs.1'"),
    (dict(teacher_preds='missing'), KeyError, 'HeadPredictions'),
])
def test_bad_cross_head_options_are_named(change, error, match):
    cfg = toy_cfg(RETINANET)
    cfg.model.cross_head = dict(cfg.model.cross_head, **change)
    with pytest.raises(error, match=match):
        MODELS.build(cfg.model)


def test_matched_statistics_are_the_teachers():
    gen = torch.Generator().manual_seed(0)
    student = 3 * torch.randn(2, 4, 5, 5, generator=gen) + 1
    teacher = 0.5 * torch.randn(2, 4, 5, 5, generator=gen) - 2
    matched = match_channel_statistics(student, teacher)
    for x in (matched, teacher):
        assert x.shape == student.shape
    values = matched.transpose(0, 1).flatten(1)
    ref = teacher.transpose(0, 1).flatten(1)
    torch.testing.assert_close(values.mean(1), ref.mean(1), atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(values.std(1), ref.std(1), atol=1e-4,
                               rtol=1e-4)


def test_bf16_teacher_gives_float32_predictions_and_features():
    model, _ = build(RETINANET, teacher_precision='bf16')
    data = model.data_preprocessor(batch(), True)
    model.run_teacher(data['inputs'], data['data_samples'])
    cls_scores, bbox_preds = model.distiller.teacher_recorders.get_record_data(
        'preds')
    kept_cls, kept_reg = model._teacher_stage
    for tensor in cls_scores + bbox_preds + tuple(kept_cls + kept_reg):
        assert tensor.dtype == torch.float32
    model.distiller.reset_records()
    model._teacher_stage = None
