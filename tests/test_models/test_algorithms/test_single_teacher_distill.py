"""SingleTeacherDistill with real (thin) mmseg models, in process."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from mmstructkd.models.algorithms import SingleTeacherDistill
from mmstructkd.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
TOY = osp.join(REPO_ROOT, 'configs', 'toy')
STUDENT_CFG = osp.join(TOY, 'pspnet_r18-d8-thin16_1xb8-2k_toyscenes.py')
TEACHER_CFG = osp.join(TOY, 'pspnet_r34-d8-thin32_1xb8-2k_toyscenes.py')


def distiller_cfg(loss=dict(type='ChannelWiseDivergence', tau=1.0),
                  student_source='decode_head.conv_seg',
                  teacher_source='decode_head.conv_seg', **mapping_extra):
    return dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            feat=dict(type='ModuleOutputs', source=student_source)),
        teacher_recorders=dict(
            feat=dict(type='ModuleOutputs', source=teacher_source)),
        distill_losses=dict(loss_kd=loss),
        loss_forward_mappings=dict(
            loss_kd=dict(
                preds_S=dict(from_student=True, recorder='feat',
                             **mapping_extra),
                preds_T=dict(from_student=False, recorder='feat'))))


def build(**kwargs):
    cfg = dict(
        type='mmstructkd.SingleTeacherDistill',
        architecture=dict(cfg_path=STUDENT_CFG),
        teacher=dict(cfg_path=TEACHER_CFG),
        distiller=distiller_cfg())
    cfg.update(kwargs)
    return MODELS.build(cfg)


def fake_batch(n=2, size=32, num_classes=5):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    inputs = [torch.randint(0, 255, (3, size, size), dtype=torch.uint8)
              for _ in range(n)]
    samples = []
    for _ in range(n):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, size, size)))
        s.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size),
                            pad_shape=(size, size)))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def test_teacher_frozen_outside_module_tree_and_optimizer():
    model = build()
    assert all(not p.requires_grad for p in model.teacher.parameters())
    # Not a registered submodule: not in parameters/state_dict/optimizer.
    teacher_params = {id(p) for p in model.teacher.parameters()}
    assert not teacher_params & {id(p) for p in model.parameters()}
    assert not any(k.startswith('teacher') for k in model.state_dict())
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.01)))
    in_optim = {id(p) for g in wrapper.optimizer.param_groups
                for p in g['params']}
    assert not teacher_params & in_optim
    assert {id(p) for p in model.architecture.parameters()} <= in_optim
    model.train()
    assert model.architecture.training and not model.teacher.training
    assert not any(m.training for m in model.teacher.modules())


def test_train_step_updates_student_only_and_logs_prefixed_losses():
    torch.manual_seed(0)
    model = build()
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.1)))
    student_before = copy.deepcopy(model.architecture.state_dict())
    teacher_before = copy.deepcopy(model.teacher.state_dict())
    model.train()
    log_vars = model.train_step(fake_batch(), wrapper)
    assert 'distill.loss_kd' in log_vars and log_vars['distill.loss_kd'] > 0
    assert 'student.decode.loss_ce' in log_vars
    assert 'student.aux.loss_ce' in log_vars
    changed = [k for k, v in model.architecture.state_dict().items()
               if not torch.equal(v, student_before[k])]
    assert any('backbone' in k for k in changed)
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k  # BN stats included
    # Recorded tensors do not outlive the step.
    assert all(not r.data_buffer for r in
               model.distiller.student_recorders.recorders.values())


def test_predict_and_tensor_modes_are_the_student():
    model = build().eval()
    batch = model.data_preprocessor(fake_batch(n=1), False)
    with torch.no_grad():
        out = model(batch['inputs'], batch['data_samples'], mode='tensor')
        ref = model.architecture(batch['inputs'], batch['data_samples'],
                                 mode='tensor')
        assert torch.equal(out, ref)
        preds = model(batch['inputs'], batch['data_samples'], mode='predict')
    assert preds[0].pred_sem_seg.data.shape[-2:] == (32, 32)


def test_teacher_forward_mode_auto_runs_only_what_recorders_need():
    feat = build(distiller=dict(
        distiller_cfg(student_source='backbone.layer4',
                      teacher_source='backbone.layer4', connector='c'),
        connectors=dict(c=dict(type='ConvModuleConnector', in_channel=128,
                               out_channel=256))))
    assert feat.teacher_forward_mode == 'feat'
    assert build().teacher_forward_mode == 'tensor'
    # In 'feat' mode the teacher's heads never run; the student's do.
    teacher_calls, student_calls = [], []
    feat.teacher.decode_head.conv_seg.register_forward_hook(
        lambda *a: teacher_calls.append(1))
    feat.architecture.decode_head.conv_seg.register_forward_hook(
        lambda *a: student_calls.append(1))
    wrapper = build_optim_wrapper(
        feat, dict(optimizer=dict(type='SGD', lr=0.1)))
    feat.train()
    log_vars = feat.train_step(fake_batch(), wrapper)
    assert log_vars['distill.loss_kd'] > 0
    assert teacher_calls == [] and student_calls == [1]


def test_connector_and_feature_distillation_train():
    model = build(distiller=dict(
        distiller_cfg(student_source='backbone.layer4',
                      teacher_source='backbone.layer4', connector='s4'),
        connectors=dict(s4=dict(type='ConvModuleConnector', in_channel=128,
                                out_channel=256))))
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.1)))
    before = model.distiller.connectors['s4'].conv.conv.weight.clone()
    model.train()
    log_vars = model.train_step(fake_batch(), wrapper)
    assert log_vars['distill.loss_kd'] > 0
    assert not torch.equal(before,
                           model.distiller.connectors['s4'].conv.conv.weight)


def test_shape_mismatch_names_loss_shapes_and_connector():
    model = build(distiller=distiller_cfg(
        student_source='backbone.layer4', teacher_source='backbone.layer4'))
    model.train()
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.1)))
    with pytest.raises(ValueError) as info:
        model.train_step(fake_batch(), wrapper)
    message = str(info.value)
    assert "distill_losses['loss_kd']" in message
    assert '128' in message and '256' in message
    assert 'ConvModuleConnector' in message


def test_missing_teacher_checkpoint_fails_at_build(tmp_path):
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError) as info:
        build(teacher_ckpt=missing)
    assert missing in str(info.value)
    assert 'has not started' in str(info.value)


def test_teacher_checkpoint_loaded_and_key_report(tmp_path):
    donor = build()
    path = str(tmp_path / 'teacher.pth')
    state = donor.teacher.state_dict()
    torch.save(dict(state_dict=state, meta=dict()), path)
    model = build(teacher_ckpt=path)
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, state[k])
    assert model.teacher_load_report == dict(
        missing_keys=[], unexpected_keys=[], shape_mismatches=[],
        allowed_keys=[])
    partial = {k: v for k, v in state.items() if 'decode_head' not in k}
    partial['extra.weight'] = torch.zeros(1)
    torch.save(dict(state_dict=partial), path)
    # Strict by default: a partial checkpoint fails at build (more in
    # test_teacher_loading.py); not strict, it loads with a report.
    with pytest.raises(RuntimeError, match='extra.weight'):
        build(teacher_ckpt=path)
    model = build(teacher_ckpt=path, teacher_ckpt_strict=False)
    report = model.teacher_load_report
    assert report['unexpected_keys'] == ['extra.weight']
    assert report['missing_keys'] and all('decode_head' in k
                                          for k in report['missing_keys'])


def test_sync_bn_converted_for_single_process():
    sync = dict(type='SyncBN', requires_grad=True)
    opts = {'model.backbone.norm_cfg': sync,
            'model.decode_head.norm_cfg': sync,
            'model.auxiliary_head.norm_cfg': sync}
    model = build(architecture=dict(cfg_path=STUDENT_CFG, cfg_options=opts),
                  teacher=dict(cfg_path=TEACHER_CFG, cfg_options=opts))
    for m in list(model.modules()) + list(model.teacher.modules()):
        assert not isinstance(m, torch.nn.SyncBatchNorm)
    kept = build(architecture=dict(cfg_path=STUDENT_CFG, cfg_options=opts),
                 convert_sync_bn=False)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in kept.modules())


def test_model_dict_without_scope_and_bad_type():
    student = Config.fromfile(STUDENT_CFG).model
    model = build(architecture=student.to_dict())
    assert type(model.architecture).__name__ == 'EncoderDecoder'
    bad = student.to_dict()
    bad['type'] = 'NoSuchSegmentor'
    with pytest.raises(KeyError, match='NoSuchSegmentor'):
        build(architecture=bad)


def test_critic_without_its_optimizer_is_named():
    cfg = Config.fromfile(osp.join(
        TOY, 'skd_pi-pa-ho_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_'
        'toyscenes.py'))
    cfg.model.teacher_ckpt = None
    model = MODELS.build(cfg.model)
    plain = build_optim_wrapper(model, dict(optimizer=dict(type='SGD',
                                                           lr=0.1)))
    model.train()
    with pytest.raises(KeyError) as info:
        model.train_step(fake_batch(), plain)
    message = str(info.value)
    assert "'discriminator' optimizer" in message
    assert 'SeparateOptimWrapperConstructor' in message
    # And the other way round: an adversarial loss without a critic.
    cfg.model.pop('discriminator')
    with pytest.raises(KeyError, match='need an adversarial critic'):
        MODELS.build(cfg.model)
