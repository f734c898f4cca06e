"""Bad detection distillation configs fail with errors that name the config
key at fault and what is available instead (issue 4, "Bad input").

The toy RetinaNet pair (5 FPN levels, P2..P6) stands for any mmdet detector.
"""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

import mmstructkd  # noqa: F401
from mmstructkd.registry import MODELS
from mmstructkd.benchmarks.random_batches import det_batch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CWD_FPN = osp.join(
    REPO_ROOT, 'configs', 'toy',
    'cwd_fpn_retinanet-r34-thin32_retinanet-r18-thin16_1xb8-2k_'
    'toyscenes-64x64.py')
# The toy student with a 4-level FPN (P2..P5) instead of 5.
FOUR_LEVEL_STUDENT = {
    'model.neck.num_outs': 4,
    'model.bbox_head.anchor_generator.strides': [4, 8, 16, 32]
}


@pytest.fixture(scope='module')
def cwd_fpn_model_cfg():
    cfg = Config.fromfile(CWD_FPN).model
    cfg.teacher_ckpt = None
    return cfg


def train_one_step(model_cfg):
    model = MODELS.build(model_cfg)
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.01)))
    model.train()
    return model.train_step(det_batch(2, (32, 32), num_classes=3, seed=0, num_boxes=2), wrapper)


def with_student_fpn_levels_4(model_cfg):
    cfg = copy.deepcopy(model_cfg)
    cfg.architecture['cfg_options'] = dict(FOUR_LEVEL_STUDENT)
    return cfg


def test_the_unmodified_config_steps(cwd_fpn_model_cfg):
    # The baseline the bad configs below depart from.
    log_vars = train_one_step(cwd_fpn_model_cfg)
    assert 'distill.loss_cwd_fpn4' in log_vars


@pytest.mark.parametrize('owner, source', [('teacher', 'nek'),
                                           ('student', 'neck.fpn_convs.7')])
def test_recorder_on_a_missing_module(cwd_fpn_model_cfg, owner, source):
    cfg = copy.deepcopy(cwd_fpn_model_cfg)
    cfg.distiller[f'{owner}_recorders'].fpn.source = source
    with pytest.raises(KeyError) as info:
        MODELS.build(cfg)  # fails at build time, before any step
    message = str(info.value)
    assert f"{owner}_recorders['fpn']" in message
    assert repr(source) in message
    # What is there instead: the closest module paths of the detector.
    assert "'neck'" in message or "'neck.fpn_convs.4'" in message
    assert 'RetinaNet' in message


def test_mapping_to_an_fpn_level_that_does_not_exist(cwd_fpn_model_cfg):
    cfg = copy.deepcopy(cwd_fpn_model_cfg)
    cfg.distiller.loss_forward_mappings.loss_cwd_fpn4.preds_T.data_idx = 5
    with pytest.raises(IndexError) as info:
        train_one_step(cfg)
    message = str(info.value)
    assert "teacher_recorders['fpn']" in message
    assert 'data_idx=5' in message
    # The levels there are.
    assert 'valid: 0..4' in message


def test_bad_fpn_level_error_names_the_mapping_entry(cwd_fpn_model_cfg):
    cfg = copy.deepcopy(cwd_fpn_model_cfg)
    cfg.distiller.loss_forward_mappings.loss_cwd_fpn4.preds_T.data_idx = 5
    with pytest.raises(IndexError) as info:
        train_one_step(cfg)
    assert "loss_forward_mappings['loss_cwd_fpn4']['preds_T']" in str(
        info.value)


def test_fpns_with_different_numbers_of_levels_as_tuples(cwd_fpn_model_cfg):
    # Whole FPN tuples into one loss: student 4 levels, teacher 5.
    cfg = with_student_fpn_levels_4(cwd_fpn_model_cfg)
    cfg.distiller.distill_losses = dict(
        loss_cwd_fpn=dict(type='ChannelWiseDivergence', tau=1,
                          loss_weight=10))
    cfg.distiller.loss_forward_mappings = dict(
        loss_cwd_fpn=dict(
            preds_S=dict(from_student=True, recorder='fpn'),
            preds_T=dict(from_student=False, recorder='fpn')))
    with pytest.raises(ValueError) as info:
        train_one_step(cfg)
    message = str(info.value)
    assert "distill_losses['loss_cwd_fpn']" in message
    assert 'student has 4 feature levels' in message
    assert 'teacher has 5' in message
    assert 'data_idx' in message  # the way out: map levels one by one


def test_fpns_with_different_numbers_of_levels_per_level(cwd_fpn_model_cfg):
    # mmrazor-style one loss per level: level 4 exists only in the teacher.
    cfg = with_student_fpn_levels_4(cwd_fpn_model_cfg)
    with pytest.raises(IndexError) as info:
        train_one_step(cfg)
    message = str(info.value)
    assert "student_recorders['fpn']" in message
    assert 'data_idx=4' in message
    assert 'the record has 4 elements (valid: 0..3)' in message
