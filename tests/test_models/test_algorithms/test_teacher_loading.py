"""A wrong teacher never trains: teacher_ckpt is loaded strictly at build.

Real (thin) mmseg models; the checkpoints are state dicts of freshly built
models, so no training is needed.
"""
import os.path as osp

import pytest
import torch

from mmstructkd.models.algorithms.teacher_loading import (
    TeacherCheckpointError, load_teacher_checkpoint)
from mmstructkd.models.task_models import build_task_model
from mmstructkd.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
TOY = osp.join(REPO_ROOT, 'configs', 'toy')
STUDENT_CFG = osp.join(TOY, 'pspnet_r18-d8-thin16_1xb8-2k_toyscenes.py')
TEACHER_CFG = osp.join(TOY, 'pspnet_r34-d8-thin32_1xb8-2k_toyscenes.py')
# An mmseg config with model-zoo weights in mmseg's metafile.
ZOO_CFG = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
# Nothing is distilled: these tests are about the weights.
NO_DISTILL = dict(type='ConfigurableDistiller')


def logits_distiller(loss_weight=1.0):
    logits = dict(logits=dict(type='ModuleOutputs',
                              source='decode_head.conv_seg'))
    return dict(
        type='ConfigurableDistiller',
        student_recorders=logits,
        teacher_recorders=logits,
        distill_losses=dict(loss_kd=dict(type='ChannelWiseDivergence',
                                         loss_weight=loss_weight)),
        loss_forward_mappings=dict(loss_kd=dict(
            preds_S=dict(from_student=True, recorder='logits'),
            preds_T=dict(from_student=False, recorder='logits'))))


def build(**kwargs):
    cfg = dict(
        type='mmstructkd.SingleTeacherDistill',
        architecture=dict(cfg_path=STUDENT_CFG),
        teacher=dict(cfg_path=TEACHER_CFG),
        distiller=NO_DISTILL)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def teacher_state(**cfg_options):
    teacher = build_task_model(
        dict(cfg_path=TEACHER_CFG, cfg_options=cfg_options), 'teacher')
    return teacher.state_dict()


def save(path, state_dict, **extra):
    torch.save(dict(state_dict=state_dict, **extra), str(path))
    return str(path)


def build_error(**kwargs):
    with pytest.raises(TeacherCheckpointError) as info:
        build(**kwargs)
    return str(info.value)


def test_right_checkpoint_loads_fully_with_module_prefix(tmp_path):
    state = teacher_state()
    # A DDP-wrapped save: every key under `module.`, nested in state_dict.
    path = save(tmp_path / 'teacher.pth',
                {f'module.{k}': v for k, v in state.items()}, meta=dict())
    model = build(teacher_ckpt=path)
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert model.teacher_load_report == dict(
        missing_keys=[], unexpected_keys=[], shape_mismatches=[],
        allowed_keys=[])
    # A bare state dict (no `state_dict` entry) and an old checkpoint
    # without BatchNorm's num_batches_tracked load too.
    bare = {k: v for k, v in state.items()
            if not k.endswith('num_batches_tracked')}
    torch.save(bare, str(tmp_path / 'bare.pth'))
    model = build(teacher_ckpt=str(tmp_path / 'bare.pth'))
    assert not model.teacher_load_report['missing_keys']


def test_student_checkpoint_as_teacher_fails_at_build(tmp_path):
    student = build_task_model(dict(cfg_path=STUDENT_CFG), 'architecture')
    path = save(tmp_path / 'student.pth', student.state_dict())
    message = build_error(teacher_ckpt=path)
    assert path in message and TEACHER_CFG in message
    assert 'keys missing in the checkpoint' in message
    assert 'shape differs (checkpoint vs model)' in message
    # A key with both shapes: the student's 16-channel stem vs the 32 of
    # the teacher.
    assert 'backbone.stem.0.weight [8, 3, 3, 3] vs [16, 3, 3, 3]' in message
    assert "the student's checkpoint" in message
    assert 'has not started' in message
    # Not strict still refuses weights of another shape.
    message = build_error(teacher_ckpt=path, teacher_ckpt_strict=False)
    assert 'shape differs' in message


def test_distillation_checkpoint_as_teacher_fails_at_build(tmp_path):
    distill = build(distiller=logits_distiller())
    path = save(tmp_path / 'iter_10.pth', distill.state_dict())
    message = build_error(teacher_ckpt=path)
    assert 'looks like a distillation checkpoint' in message
    assert "'architecture.'" in message
    assert 'export_student.py' in message
    assert TEACHER_CFG in message
    assert 'teacher_ckpt_strict' not in message  # it would not help
    # Not strict either: none of its keys fits the teacher.
    message = build_error(teacher_ckpt=path, teacher_ckpt_strict=False)
    assert 'distillation checkpoint' in message
    assert '(0 of the model' in message


def test_same_keys_other_shapes_fails_at_build(tmp_path):
    narrow = teacher_state(**{'model.decode_head.channels': 48})
    path = save(tmp_path / 'narrow.pth', narrow)
    message = build_error(teacher_ckpt=path)
    assert '0 keys missing in the checkpoint, 0 not in the model' in message
    assert 'decode_head.conv_seg.weight [8, 48, 1, 1] vs [8, 64, 1, 1]' \
        in message
    assert 'other widths or another num_classes' in message
    assert 'teacher_ckpt_allow_mismatch' in message


def test_allow_mismatch_prefixes_load_the_rest(tmp_path):
    state = teacher_state()
    no_aux = {k: v for k, v in state.items()
              if not k.startswith('auxiliary_head.')}
    path = save(tmp_path / 'no_aux.pth', no_aux)
    message = build_error(teacher_ckpt=path)
    assert 'auxiliary_head.conv_seg.bias' in message
    assert 'teacher_ckpt_allow_mismatch' in message
    assert 'teacher_ckpt_strict=False' in message

    model = build(teacher_ckpt=path,
                  teacher_ckpt_allow_mismatch=('auxiliary_head.', ))
    report = model.teacher_load_report
    assert report['missing_keys'] == [] and report['shape_mismatches'] == []
    assert report['allowed_keys'] and all(
        k.startswith('auxiliary_head.') for k in report['allowed_keys'])
    loaded = model.teacher.state_dict()
    for key, value in no_aux.items():
        assert torch.equal(loaded[key], value), key

    # The other way round: a teacher built without the auxiliary head, and
    # the checkpoint that has one (extra keys), or one of another width.
    no_aux_teacher = dict(cfg_path=TEACHER_CFG,
                          cfg_options={'model.auxiliary_head': None})
    full = save(tmp_path / 'full.pth', state)
    assert 'not in the model' in build_error(teacher=no_aux_teacher,
                                             teacher_ckpt=full)
    model = build(teacher=no_aux_teacher, teacher_ckpt=full,
                  teacher_ckpt_allow_mismatch=['auxiliary_head.'])
    assert model.teacher_load_report['unexpected_keys'] == []
    wide_aux = save(tmp_path / 'wide_aux.pth', teacher_state(
        **{'model.auxiliary_head.channels': 24}))
    build_error(teacher_ckpt=wide_aux)
    model = build(teacher_ckpt=wide_aux,
                  teacher_ckpt_allow_mismatch=('auxiliary_head.', ))
    assert 'auxiliary_head.conv_seg.weight' in \
        model.teacher_load_report['allowed_keys']


def test_not_strict_loads_what_fits_and_reports_the_rest(tmp_path):
    state = teacher_state()
    partial = {k: v for k, v in state.items() if 'decode_head' not in k}
    partial['extra.weight'] = torch.zeros(1)
    path = save(tmp_path / 'partial.pth', partial)
    message = build_error(teacher_ckpt=path)
    assert "not in the model: ['extra.weight']" in message
    model = build(teacher_ckpt=path, teacher_ckpt_strict=False)
    report = model.teacher_load_report
    assert report['unexpected_keys'] == ['extra.weight']
    assert report['missing_keys'] and all(
        'decode_head' in k for k in report['missing_keys'])
    loaded = model.teacher.state_dict()
    assert torch.equal(loaded['backbone.stem.0.weight'],
                       state['backbone.stem.0.weight'])


def test_loader_function_without_the_algorithm(tmp_path):
    teacher = build_task_model(dict(cfg_path=TEACHER_CFG), 'teacher')
    state = {k: v.clone() + 1 if v.is_floating_point() else v
             for k, v in teacher.state_dict().items()}
    path = save(tmp_path / 't.pth', state)
    report = load_teacher_checkpoint(teacher, path,
                                     teacher_cfg=dict(cfg_path=TEACHER_CFG))
    assert not any(report.values())
    assert torch.equal(teacher.state_dict()['decode_head.conv_seg.bias'],
                       state['decode_head.conv_seg.bias'])


def test_unreadable_local_file_is_not_told_to_download(tmp_path):
    corrupt = tmp_path / 'teacher.pth'
    corrupt.write_bytes(b'this is not a checkpoint')
    with pytest.raises(RuntimeError) as info:
        build(teacher_ckpt=str(corrupt))
    message = str(info.value)
    assert str(corrupt) in message and 'has not started' in message
    assert 'could not be read as a checkpoint' in message
    assert 'download' not in message
    # A URL that cannot be fetched keeps the download advice.
    with pytest.raises(RuntimeError) as info:
        build(teacher_ckpt='http://127.0.0.1:9/teacher.pth')
    assert 'download the file' in str(info.value)


def test_pretrained_without_model_zoo_weights_is_refused(tmp_path):
    # A file config has no metafile entry.
    with pytest.raises(ValueError) as info:
        build(teacher=dict(cfg_path=TEACHER_CFG, pretrained=True))
    message = str(info.value)
    assert 'teacher' in message and 'set teacher_ckpt' in message
    assert TEACHER_CFG in message
    # A package config that the package's metafile lists no weights for.
    toy = 'mmstructkd::toy/pspnet_r34-d8-thin32_1xb8-2k_toyscenes.py'
    with pytest.raises(ValueError, match='lists no model-zoo weights'):
        build(teacher=dict(cfg_path=toy, pretrained=True))
    with pytest.raises(ValueError, match='lists no model-zoo weights'):
        build(architecture=dict(cfg_path=toy, pretrained=True))
    with pytest.raises(TypeError, match='set teacher_ckpt'):
        build(teacher=dict(cfg_path=TEACHER_CFG, pretrained='teacher.pth'))
    # With teacher_ckpt given, pretrained=True is not used (as in mmrazor,
    # teacher_ckpt wins), so nothing is looked up.
    path = save(tmp_path / 'teacher.pth', teacher_state())
    model = build(teacher=dict(cfg_path=TEACHER_CFG, pretrained=True),
                  teacher_ckpt=path)
    assert model.teacher_ckpt == path


@pytest.fixture
def model_zoo_stand_in(tmp_path, monkeypatch):
    """The model-zoo weights of ZOO_CFG, served from a local file instead of
    download.openmmlab.com (these machines have no network)."""
    import mmengine.runner.checkpoint as checkpoint_module
    model = build_task_model(dict(cfg_path=ZOO_CFG), 'teacher')
    state = {k: v + 0.5 if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    local = save(tmp_path / 'zoo.pth', state)
    urls = []

    def load_url(url, *args, **kwargs):
        urls.append(url)
        return torch.load(local, map_location='cpu', weights_only=True)

    monkeypatch.setattr(checkpoint_module, 'load_url', load_url)
    return state, urls


def test_pretrained_teacher_loads_model_zoo_weights(model_zoo_stand_in):
    state, urls = model_zoo_stand_in
    model = build(teacher=dict(cfg_path=ZOO_CFG, pretrained=True))
    assert urls and urls[0].startswith('https://download.openmmlab.com/')
    assert model.teacher_ckpt == urls[0]
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_pretrained_student_loads_and_survives_init_weights(
        model_zoo_stand_in):
    state, urls = model_zoo_stand_in
    model = build(architecture=dict(cfg_path=ZOO_CFG, pretrained=True))
    assert len(urls) == 1 and model.teacher_ckpt is None
    model.init_weights()  # what the Runner does before training
    for key, value in model.architecture.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_teacher_ckpt_wins_over_pretrained(tmp_path, model_zoo_stand_in):
    _, urls = model_zoo_stand_in
    own = {k: v - 1 if v.is_floating_point() else v
           for k, v in build_task_model(dict(cfg_path=ZOO_CFG),
                                        'teacher').state_dict().items()}
    path = save(tmp_path / 'own.pth', own)
    model = build(teacher=dict(cfg_path=ZOO_CFG, pretrained=True),
                  teacher_ckpt=path)
    assert urls == [] and model.teacher_ckpt == path
    assert torch.equal(model.teacher.state_dict()['decode_head.conv_seg.bias'],
                       own['decode_head.conv_seg.bias'])


def test_other_num_classes_named_at_build():
    seven = {'model.decode_head.num_classes': 7,
             'model.auxiliary_head.num_classes': 7}
    with pytest.raises(ValueError) as info:
        build(teacher=dict(cfg_path=TEACHER_CFG, cfg_options=seven),
              distiller=logits_distiller())
    message = str(info.value)
    assert 'num_classes differs between the teacher and student configs' \
        in message
    assert 'decode_head.num_classes=7' in message
    assert 'decode_head.num_classes=8' in message
    assert "distill_losses['loss_kd']" in message
    assert 'ConvModuleConnector' not in message


def test_string_loss_weight_fails_at_build():
    with pytest.raises(TypeError) as info:
        build(distiller=logits_distiller(loss_weight='5'))
    message = str(info.value)
    assert "distill_losses['loss_kd'] (ChannelWiseDivergence)" in message
    assert 'loss_weight must be a number' in message


def test_built_teacher_module_is_loaded_and_stays_unregistered(tmp_path):
    state = teacher_state()
    path = save(tmp_path / 'teacher.pth', state)
    teacher = build_task_model(dict(cfg_path=TEACHER_CFG), 'teacher')
    model = build(teacher=teacher, teacher_ckpt=path)
    assert model.teacher is teacher
    assert torch.equal(teacher.state_dict()['decode_head.conv_seg.weight'],
                       state['decode_head.conv_seg.weight'])
    # Not a submodule (nothing of it in the optimizer or the checkpoints).
    assert not any(k.startswith(('_teacher', 'teacher'))
                   for k in model.state_dict())
    student = build_task_model(dict(cfg_path=STUDENT_CFG), 'architecture')
    wrong = save(tmp_path / 'student.pth', student.state_dict())
    with pytest.raises(TeacherCheckpointError, match='a built EncoderDecoder'):
        build(teacher=teacher, teacher_ckpt=wrong)
