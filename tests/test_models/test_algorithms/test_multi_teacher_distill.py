"""MultiTeacherDistill with real (thin) mmseg models, in process: two
teachers of different architectures (PSPNet, DeepLabV3) into the toy
PSPNet student."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.optim import build_optim_wrapper

from mmstructkd.models.algorithms import MultiTeacherDistill
from mmstructkd.models.algorithms.adversarial_critic import \
    resolve_critic_inputs
from mmstructkd.models.algorithms.teacher_loading import \
    TeacherCheckpointError
from mmstructkd.registry import MODELS
from test_single_teacher_distill import (STUDENT_CFG, TEACHER_CFG, TOY,
                                         fake_batch)

DEEPLAB_CFG = osp.join(TOY, 'deeplabv3_r34-d8-thin32_1xb8-2k_toyscenes.py')
LOGITS = dict(type='ModuleOutputs', source='decode_head.conv_seg')


def mapping(teacher, student_recorder='logits', teacher_recorder='logits',
            **student_extra):
    return dict(
        preds_S=dict(from_student=True, recorder=student_recorder,
                     **student_extra),
        preds_T=dict(from_student=False, teacher=teacher,
                     recorder=teacher_recorder))


def distiller(teacher_recorders=None, mappings=None, **extra):
    """CWD on the logits of each teacher (as the toy config)."""
    teacher_recorders = teacher_recorders or dict(
        psp=dict(logits=LOGITS), aspp=dict(logits=LOGITS))
    mappings = mappings or dict(loss_psp=mapping('psp'),
                                loss_aspp=mapping('aspp'))
    cfg = dict(
        type='ConfigurableDistiller',
        student_recorders=dict(logits=LOGITS),
        teacher_recorders=teacher_recorders,
        distill_losses={name: dict(type='ChannelWiseDivergence', tau=1.0)
                        for name in mappings},
        loss_forward_mappings=mappings)
    cfg.update(extra)
    return cfg


def build(teachers=None, **kwargs):
    cfg = dict(
        type='mmstructkd.MultiTeacherDistill',
        architecture=dict(cfg_path=STUDENT_CFG),
        teachers=teachers or dict(psp=dict(cfg_path=TEACHER_CFG),
                                  aspp=dict(cfg_path=DEEPLAB_CFG)),
        distiller=distiller())
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_teachers_frozen_outside_module_tree_and_optimizer():
    model = build()
    assert isinstance(model, MultiTeacherDistill)
    assert model.teacher_names == ['psp', 'aspp']
    teachers = model.teachers
    assert type(teachers['psp'].decode_head).__name__ == 'PSPHead'
    assert type(teachers['aspp'].decode_head).__name__ == 'ASPPHead'
    own = {id(p) for p in model.parameters()}
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.01)))
    in_optim = {id(p) for g in wrapper.optimizer.param_groups
                for p in g['params']}
    for teacher in teachers.values():
        params = {id(p) for p in teacher.parameters()}
        assert not params & own and not params & in_optim
        assert all(not p.requires_grad for p in teacher.parameters())
        assert not any(m is teacher for m in model.modules())
    assert {k.split('.')[0] for k in model.state_dict()} <= {
        'architecture', 'distiller', 'data_preprocessor', '_extra_state'}
    model.train()
    assert model.architecture.training
    assert not any(m.training for t in teachers.values()
                   for m in t.modules())


def test_train_step_distils_from_each_teacher_and_keeps_them_fixed():
    torch.manual_seed(0)
    model = build()
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.1)))
    before = {name: copy.deepcopy(t.state_dict())
              for name, t in model.teachers.items()}
    student_before = copy.deepcopy(model.architecture.state_dict())
    model.train()
    log_vars = model.train_step(fake_batch(), wrapper)
    assert log_vars['distill.loss_psp'] > 0
    assert log_vars['distill.loss_aspp'] > 0
    assert log_vars['distill.loss_psp'] != log_vars['distill.loss_aspp']
    assert 'student.decode.loss_ce' in log_vars
    # The total loss sums both distillation losses with the student's.
    assert any(not torch.equal(v, student_before[k])
               for k, v in model.architecture.state_dict().items())
    for name, teacher in model.teachers.items():
        for k, v in teacher.state_dict().items():
            assert torch.equal(v, before[name][k]), (name, k)
    assert all(not r.data_buffer
               for group in model.distiller.teacher_recorders.values()
               for r in group.recorders.values())


def test_each_teacher_runs_only_as_far_as_its_recorders_need():
    model = build(distiller=distiller(
        teacher_recorders=dict(
            psp=dict(feat=dict(type='ModuleOutputs',
                               source='backbone.layer4')),
            aspp=dict(logits=LOGITS)),
        mappings=dict(
            loss_psp=mapping('psp', 'feat', 'feat', connector='c'),
            loss_aspp=mapping('aspp')),
        student_recorders=dict(
            logits=LOGITS,
            feat=dict(type='ModuleOutputs', source='backbone.layer4')),
        connectors=dict(c=dict(type='ConvModuleConnector', in_channel=128,
                               out_channel=256))))
    modes = {name: frozen.forward_mode
             for name, frozen in model.frozen_teachers.items()}
    assert modes == dict(psp='feat', aspp='tensor')
    calls = {name: [] for name in model.teachers}
    for name, teacher in model.teachers.items():
        teacher.decode_head.conv_seg.register_forward_hook(
            lambda *a, name=name: calls[name].append(1))
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.1)))
    model.train()
    log_vars = model.train_step(fake_batch(), wrapper)
    assert log_vars['distill.loss_psp'] > 0
    assert log_vars['distill.loss_aspp'] > 0
    assert calls == dict(psp=[], aspp=[1])


def test_teacher_checkpoints_options_and_precision_per_teacher(tmp_path):
    donor = build()
    paths = {}
    for name, teacher in donor.teachers.items():
        paths[name] = str(tmp_path / f'{name}.pth')
        torch.save(dict(state_dict=teacher.state_dict()), paths[name])
    model = build(teachers=dict(
        psp=dict(cfg_path=TEACHER_CFG, ckpt=paths['psp']),
        aspp=dict(cfg_path=DEEPLAB_CFG, ckpt=paths['aspp'],
                  precision='bf16')))
    for name, teacher in model.teachers.items():
        state = donor.teachers[name].state_dict()
        assert all(torch.equal(v, state[k])
                   for k, v in teacher.state_dict().items())
    frozen = model.frozen_teachers
    assert frozen['psp'].ckpt == paths['psp']
    assert not frozen['aspp'].load_report['missing_keys']
    assert [f.precision for f in frozen.values()] == ['fp32', 'bf16']
    seen = {}
    for name, teacher in model.teachers.items():
        teacher.decode_head.conv_seg.register_forward_hook(
            lambda m, a, out, name=name: seen.setdefault(name, out.dtype))
    data = model.data_preprocessor(fake_batch(), True)
    model.run_teacher(data['inputs'], data['data_samples'])
    assert seen == dict(psp=torch.float32, aspp=torch.bfloat16)
    records = model.distiller.teacher_recorders
    assert records['aspp'].get_record_data('logits').dtype == torch.float32
    model.distiller.reset_records()

    # Each teacher is loaded strictly, and the message names which one.
    with pytest.raises(TeacherCheckpointError) as info:
        build(teachers=dict(
            psp=dict(cfg_path=TEACHER_CFG, ckpt=paths['psp']),
            aspp=dict(cfg_path=DEEPLAB_CFG, ckpt=paths['psp'])))
    message = str(info.value)
    assert "teachers['aspp'].ckpt" in message
    assert "teachers['aspp'].ckpt_allow_mismatch" in message
    partial = build(teachers=dict(
        psp=dict(cfg_path=TEACHER_CFG, ckpt=paths['psp']),
        aspp=dict(cfg_path=DEEPLAB_CFG, ckpt=paths['psp'],
                  ckpt_allow_mismatch=('decode_head.', ))))
    assert partial.frozen_teachers['aspp'].load_report['allowed_keys']


def test_a_mapping_to_an_unknown_teacher_lists_the_teachers():
    with pytest.raises(KeyError) as info:
        build(distiller=distiller(mappings=dict(
            loss_psp=mapping('psp'), loss_big=mapping('seg_big'))))
    message = str(info.value)
    assert "loss_forward_mappings['loss_big']['preds_T']" in message
    assert "no teacher named 'seg_big'" in message
    assert "['psp', 'aspp']" in message
    # A teacher entry must say which teacher.
    with pytest.raises(KeyError, match=r"teacher=<name>.*\['psp', 'aspp'\]"):
        build(distiller=distiller(mappings=dict(
            loss_psp=mapping('psp'), loss_any=mapping(None))))
    # ... and the critic's too.
    model = build()
    with pytest.raises(KeyError, match=r"discriminator_inputs\['preds_T'\]"):
        resolve_critic_inputs(model.distiller, None)
    resolved = resolve_critic_inputs(model.distiller, dict(
        preds_S=dict(recorder='logits'),
        preds_T=dict(teacher='aspp', recorder='logits')))
    assert resolved['preds_T']['from_student'] is False


def test_bad_teachers_and_recorders_are_named():
    with pytest.raises(KeyError) as info:
        build(distiller=distiller(teacher_recorders=dict(
            psp=dict(logits=LOGITS), aspp=dict(logits=LOGITS),
            seg_big=dict(logits=LOGITS))))
    assert "['seg_big']" in str(info.value)
    assert "['psp', 'aspp']" in str(info.value)
    with pytest.raises(KeyError, match=r"teachers \['aspp'\] have no "
                       'teacher_recorders'):
        build(distiller=distiller(
            teacher_recorders=dict(psp=dict(logits=LOGITS)),
            mappings=dict(loss_psp=mapping('psp'))))
    with pytest.raises(KeyError, match=r"no recorder 'feat' in "
                       r"teacher_recorders\['aspp'\]"):
        build(distiller=distiller(mappings=dict(
            loss_psp=mapping('psp'),
            loss_aspp=mapping('aspp', teacher_recorder='feat'))))
    with pytest.raises(KeyError, match=r"write \['ckpt'\], not "
                       r"\['teacher_ckpt'\]"):
        build(teachers=dict(psp=dict(cfg_path=TEACHER_CFG,
                                     teacher_ckpt='x.pth'),
                            aspp=dict(cfg_path=DEEPLAB_CFG)))
    with pytest.raises(ValueError, match='teacher name'):
        build(teachers={'psp.big': dict(cfg_path=TEACHER_CFG)})
    with pytest.raises(ValueError, match="teacher_precision must be one of"):
        build(teachers=dict(psp=dict(cfg_path=TEACHER_CFG, precision='fp8'),
                            aspp=dict(cfg_path=DEEPLAB_CFG)))
    with pytest.raises(TypeError, match='teacher_ckpt'):
        build(teacher_ckpt='x.pth')


def test_single_teacher_forms_stay_apart():
    """Named teachers only with MultiTeacherDistill, and the other way
    round."""
    single = dict(
        type='mmstructkd.SingleTeacherDistill',
        architecture=dict(cfg_path=STUDENT_CFG),
        teacher=dict(cfg_path=TEACHER_CFG))
    with pytest.raises(KeyError, match='one teacher'):
        MODELS.build(dict(single, distiller=distiller(
            teacher_recorders=dict(logits=LOGITS),
            mappings=dict(loss_psp=mapping('psp')))))
    with pytest.raises(KeyError, match="MultiTeacherDistill's form"):
        MODELS.build(dict(single, distiller=distiller()))
