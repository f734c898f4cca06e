"""``num_classes`` of the distillation algorithms: one class count set in
every head of the student and the teachers (not mmdet's class-agnostic
``rpn_head``), followed by the SKD critic, with real (thin) toy models."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper

from mmstructkd.models.algorithms.class_count import (class_count_paths,
                                                      set_num_classes)
from mmstructkd.registry import MODELS
from mmstructkd.toy_data import CLASSES
from test_multi_teacher_distill import build as build_multi
from test_single_teacher_distill import STUDENT_CFG, TEACHER_CFG, TOY
from test_single_teacher_distill import build as build_single
from test_single_teacher_distill import fake_batch

# The toy segmentation configs' class count: every class of the toy set.
TOY_CLASSES = len(CLASSES)
SKD_HO = osp.join(
    TOY, 'skd_pi-pa-ho_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_'
    'toyscenes.py')
FASTER_S = osp.join(TOY,
                    'faster-rcnn_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py')
FASTER_T = osp.join(TOY,
                    'faster-rcnn_r34-thin32_fpn_1xb8-2k_toyscenes-64x64.py')
MASK_S = osp.join(TOY, 'mask-rcnn_r18-thin16_fpn_1xb8-2k_toyscenes-64x64.py')
MASK_T = osp.join(TOY, 'mask-rcnn_r34-thin32_fpn_1xb8-2k_toyscenes-64x64.py')
# mmdet's RPNHead has one class by default; written out, so that the test
# shows the key is found and left alone.
RPN_KEY = {'model.rpn_head.num_classes': 1}


def seg_heads(model):
    """decode_head and auxiliary_head class counts and logit channels."""
    return (model.decode_head.num_classes,
            model.decode_head.conv_seg.out_channels,
            model.auxiliary_head.num_classes,
            model.auxiliary_head.conv_seg.out_channels)


def det_distiller():
    """A loss on the class scores of the two-stage detectors' box head."""
    scores = dict(type='ModuleOutputs', source='roi_head.bbox_head.fc_cls')
    return dict(
        type='ConfigurableDistiller',
        student_recorders=dict(scores=scores),
        teacher_recorders=dict(scores=scores),
        distill_losses=dict(loss_kd=dict(type='ChannelWiseDivergence')),
        loss_forward_mappings=dict(
            loss_kd=dict(preds_S=dict(from_student=True, recorder='scores'),
                         preds_T=dict(from_student=False, recorder='scores'))))


def test_pspnet_heads_of_student_and_teacher_from_cfg_path():
    plain = build_single()
    assert seg_heads(plain.student) == seg_heads(plain.teacher) == \
        (TOY_CLASSES, ) * 4
    assert plain.num_classes is None
    model = build_single(num_classes=3)
    assert model.num_classes == 3
    assert seg_heads(model.student) == (3, 3, 3, 3)
    assert seg_heads(model.teacher) == (3, 3, 3, 3)
    # The teacher is still the toy teacher (only its heads changed).
    assert model.teacher.backbone.depth == 34
    assert model._frozen_teacher.desc == f'cfg_path {TEACHER_CFG!r}'


def test_inline_model_dicts_and_a_list_of_auxiliary_heads():
    student = Config.fromfile(STUDENT_CFG).model.to_dict()
    aux = student['auxiliary_head']
    student['auxiliary_head'] = [aux, dict(aux, in_index=3, in_channels=128)]
    teacher = Config.fromfile(TEACHER_CFG).model.to_dict()
    model = build_single(architecture=student, teacher=teacher, num_classes=4)
    assert model.student.decode_head.num_classes == 4
    assert [head.num_classes for head in model.student.auxiliary_head] == \
        [4, 4]
    assert seg_heads(model.teacher) == (4, 4, 4, 4)
    # The configs given are not changed.
    assert student['decode_head']['num_classes'] == TOY_CLASSES
    assert [h['num_classes'] for h in student['auxiliary_head']] == \
        [TOY_CLASSES] * 2
    assert teacher['decode_head']['num_classes'] == TOY_CLASSES


def test_cfg_options_of_a_cfg_path_model_are_kept():
    cfg = dict(cfg_path=STUDENT_CFG,
               cfg_options={'model.decode_head.channels': 24})
    changed = set_num_classes(cfg, 3, 'architecture')
    assert changed['cfg_path'] == STUDENT_CFG
    assert changed['cfg_options'] == {
        'model.decode_head.channels': 24,
        'model.decode_head.num_classes': 3,
        'model.auxiliary_head.num_classes': 3
    }
    assert cfg['cfg_options'] == {'model.decode_head.channels': 24}
    model = build_single(architecture=cfg, num_classes=3)
    assert model.student.decode_head.channels == 24
    assert seg_heads(model.student) == (3, 3, 3, 3)


def test_faster_rcnn_box_head_but_not_rpn_head():
    model = build_single(architecture=dict(cfg_path=FASTER_S,
                                           cfg_options=RPN_KEY),
                         teacher=dict(cfg_path=FASTER_T, cfg_options=RPN_KEY),
                         distiller=det_distiller(),
                         num_classes=7)
    for detector in (model.student, model.teacher):
        bbox_head = detector.roi_head.bbox_head
        assert bbox_head.num_classes == 7
        assert bbox_head.fc_cls.out_features == 8  # 7 classes + background
        assert detector.rpn_head.num_classes == 1
        assert detector.rpn_head.rpn_cls.out_channels == \
            detector.rpn_head.num_base_priors  # one objectness score
    # The same on an inline config: rpn_head is skipped by the search.
    faster = Config.fromfile(FASTER_S).model.to_dict()
    faster['rpn_head']['num_classes'] = 1
    assert class_count_paths(faster) == ['roi_head.bbox_head.num_classes']
    assert set_num_classes(faster, 7, 'x')['rpn_head']['num_classes'] == 1


def test_mask_rcnn_mask_head_of_student_and_teacher():
    model = build_single(architecture=dict(cfg_path=MASK_S),
                         teacher=dict(cfg_path=MASK_T),
                         distiller=det_distiller(),
                         num_classes=2)
    for detector in (model.student, model.teacher):
        assert detector.roi_head.bbox_head.num_classes == 2
        assert detector.roi_head.mask_head.num_classes == 2
        assert detector.roi_head.mask_head.conv_logits.out_channels == 2
        assert detector.rpn_head.num_classes == 1


def test_every_num_classes_key_is_found_recursively():
    cascade = dict(type='CascadeRCNN',
                   rpn_head=dict(type='RPNHead', num_classes=1),
                   roi_head=dict(
                       bbox_head=[dict(num_classes=80) for _ in range(3)],
                       mask_head=dict(num_classes=80)),
                   bbox_head=(dict(num_classes=80), ))
    assert class_count_paths(cascade) == [
        'roi_head.bbox_head.0.num_classes', 'roi_head.bbox_head.1.num_classes',
        'roi_head.bbox_head.2.num_classes', 'roi_head.mask_head.num_classes',
        'bbox_head.0.num_classes'
    ]
    changed = set_num_classes(cascade, 5, 'architecture')
    assert [h['num_classes'] for h in changed['roi_head']['bbox_head']] == \
        [5, 5, 5]
    assert changed['roi_head']['mask_head']['num_classes'] == 5
    assert changed['bbox_head'][0]['num_classes'] == 5
    assert changed['rpn_head']['num_classes'] == 1
    assert cascade['roi_head']['mask_head']['num_classes'] == 80
    # None changes nothing (the config itself comes back).
    assert set_num_classes(cascade, None, 'architecture') is cascade


def test_multi_teacher_every_teacher_and_the_critic_of_the_named_one():
    model = build_multi(num_classes=3,
                        discriminator=dict(type='SAGANDiscriminator',
                                           base_channels=8),
                        discriminator_inputs=dict(
                            preds_S=dict(recorder='logits'),
                            preds_T=dict(teacher='aspp', recorder='logits')))
    assert seg_heads(model.student) == (3, 3, 3, 3)
    for name in ('psp', 'aspp'):
        assert seg_heads(model.teachers[name]) == (3, 3, 3, 3)
    assert model.discriminator.num_classes == 3
    assert model.discriminator.in_channels == 3


def test_critic_infers_its_class_count_from_the_teacher():
    cfg = Config.fromfile(SKD_HO)
    cfg.model.teacher_ckpt = None  # a random teacher is enough here
    assert cfg.model.discriminator.get('num_classes') is None
    assert MODELS.build(cfg.model).discriminator.num_classes == TOY_CLASSES
    cfg.model.num_classes = 3
    model = MODELS.build(cfg.model)
    assert model.discriminator.num_classes == 3
    assert model.discriminator.in_channels == 3
    # It trains on 3-class logits: one student and one critic step.
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    MessageHub.get_current_instance().update_info('iter', 0)
    model.train()
    torch.manual_seed(0)
    log_vars = model.train_step(fake_batch(num_classes=3), wrapper)
    assert 'distill.loss_ho' in log_vars and 'disc.loss' in ' '.join(log_vars)
    assert all(torch.isfinite(v).all() for v in log_vars.values())
    # In softmax_image mode the image's channels are added.
    cfg.model.discriminator.input_mode = 'softmax_image'
    critic = MODELS.build(cfg.model).discriminator
    assert (critic.num_classes, critic.in_channels) == (3, 6)


def test_explicit_critic_class_count_is_kept():
    cfg = Config.fromfile(SKD_HO)
    cfg.model.teacher_ckpt = None
    cfg.model.num_classes = 3
    cfg.model.discriminator.num_classes = 7
    assert MODELS.build(cfg.model).discriminator.num_classes == 7
    cfg.model.discriminator.pop('num_classes')
    cfg.model.discriminator.in_channels = 6
    critic = MODELS.build(cfg.model).discriminator
    assert (critic.num_classes, critic.in_channels) == (6, 6)


def test_critic_without_a_decode_head_to_read_asks_for_num_classes():
    with pytest.raises(ValueError) as info:
        build_single(architecture=dict(cfg_path=FASTER_S),
                     teacher=dict(cfg_path=FASTER_T),
                     distiller=det_distiller(),
                     discriminator=dict(type='SAGANDiscriminator',
                                        base_channels=8),
                     discriminator_inputs=dict(
                         preds_S=dict(recorder='scores'),
                         preds_T=dict(recorder='scores')))
    message = str(info.value)
    assert 'model.discriminator.num_classes is not set' in message
    assert 'FasterRCNN has no decode_head' in message
    assert 'Set model.discriminator.num_classes' in message


@pytest.mark.parametrize('value', [0, -2, 2.0, '3', True, [3]])
def test_bad_values_are_refused_naming_the_argument(value):
    with pytest.raises(ValueError) as info:
        build_single(num_classes=value)
    message = str(info.value)
    assert 'num_classes of the distillation model must be a positive int' \
        in message
    assert repr(value) in message
    with pytest.raises(ValueError, match='must be a positive int'):
        build_multi(num_classes=value)


def test_a_model_config_without_num_classes_says_where_it_looked(tmp_path):
    student = Config.fromfile(STUDENT_CFG).model.to_dict()
    for head in ('decode_head', 'auxiliary_head'):
        student[head].pop('num_classes')
    with pytest.raises(ValueError) as info:
        build_single(architecture=student, num_classes=3)
    message = str(info.value)
    assert "num_classes=3: architecture (model type 'EncoderDecoder') has " \
        'no num_classes key in its model config' in message
    assert "'auxiliary_head', 'backbone'" in message
    assert "skipping ['rpn_head']" in message
    # The same for a teacher given by cfg_path.
    config = tmp_path / 'headless.py'
    config.write_text(
        "default_scope = 'mmseg'\n"
        "model = dict(type='EncoderDecoder', backbone=dict(type='ResNetV1c'))"
        '\n')
    with pytest.raises(ValueError) as info:
        build_single(teacher=dict(cfg_path=str(config)), num_classes=3)
    message = str(info.value)
    assert f"teacher (the model of cfg_path {str(config)!r})" in message
    assert "top-level keys: ['backbone', 'type']" in message
    # And for one of several teachers, by name.
    with pytest.raises(ValueError, match=r"teachers\['aspp'\]"):
        build_multi(teachers=dict(psp=dict(cfg_path=TEACHER_CFG),
                                  aspp=dict(cfg_path=str(config))),
                    num_classes=3)


def test_a_built_model_cannot_take_num_classes():
    student = build_single().student
    with pytest.raises(ValueError, match='already built EncoderDecoder'):
        build_single(architecture=student, num_classes=3)
    # Without num_classes a built model is used as it is.
    assert build_single(architecture=student).student is student


def test_one_change_instead_of_one_per_model():
    # Changing the student's heads alone leaves the teacher at 8 classes:
    # the distiller refuses logits of different class counts.
    three = {
        'model.decode_head.num_classes': 3,
        'model.auxiliary_head.num_classes': 3
    }
    with pytest.raises(ValueError, match='num_classes'):
        build_single(
            architecture=dict(cfg_path=STUDENT_CFG, cfg_options=three))
    model = build_single(num_classes=3)
    assert seg_heads(model.student) == seg_heads(model.teacher)
