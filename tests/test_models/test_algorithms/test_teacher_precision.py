"""teacher_precision: the teacher's forward under autocast, its records
back in float32, with real (thin) mmseg models in process."""
import copy

import pytest
import torch
from mmengine.optim import build_optim_wrapper

from mmstructkd.models.algorithms.frozen_teacher import teacher_autocast
from mmstructkd.models.recorders.recorder_manager import cast_floating
from mmstructkd.registry import MODELS
from test_single_teacher_distill import (STUDENT_CFG, TEACHER_CFG, build,
                                         distiller_cfg, fake_batch)


def record_teacher(model, batch):
    """Run the teacher as a training step does; return its record of the
    logits and what its classifier conv output (dtype, autocast on)."""
    seen = []
    handle = model.teacher.decode_head.conv_seg.register_forward_hook(
        lambda m, a, out: seen.append(
            (out.dtype, torch.is_autocast_enabled('cpu'))))
    data = model.data_preprocessor(batch, True)
    try:
        model.run_teacher(data['inputs'], data['data_samples'])
        record = model.distiller.teacher_recorders.get_record_data('feat')
    finally:
        handle.remove()
        model.distiller.reset_records()
    return record, seen


def test_bad_precision_is_refused_at_build_with_the_allowed_values():
    with pytest.raises(ValueError) as info:
        build(teacher_precision='fp64')
    assert "('fp32', 'bf16', 'fp16')" in str(info.value)
    assert "'fp64'" in str(info.value)


def test_fp16_on_a_cpu_only_machine_or_teacher_points_to_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(ValueError) as info:
        build(teacher_precision='fp16')
    message = str(info.value)
    assert 'CUDA' in message and "teacher_precision='bf16'" in message
    # A CUDA machine, but the teacher runs on the CPU: refused at the step.
    teacher = torch.nn.Conv2d(1, 1, 1)
    with pytest.raises(ValueError, match="teacher_precision='bf16'"):
        teacher_autocast(teacher, 'fp16')


def test_default_path_is_unchanged():
    torch.manual_seed(0)
    model = build().eval()
    assert model.teacher_precision == 'fp32'
    batch = fake_batch()
    record, seen = record_teacher(model, batch)
    # No autocast of its own: the plain float32 forward, bit for bit.
    assert seen == [(torch.float32, False)]
    data = model.data_preprocessor(batch, True)
    outputs = []
    handle = model.teacher.decode_head.conv_seg.register_forward_hook(
        lambda m, a, out: outputs.append(out))
    with torch.no_grad():
        model.teacher(data['inputs'], data['data_samples'], mode='tensor')
    handle.remove()
    assert torch.equal(record, outputs[0])
    # Under the step's own autocast (--amp), the teacher follows it, as
    # before.
    with torch.autocast('cpu', dtype=torch.bfloat16):
        record, seen = record_teacher(model, batch)
    assert seen == [(torch.bfloat16, True)]
    assert record.dtype == torch.bfloat16


def test_bf16_teacher_records_float32_and_a_close_loss():
    torch.manual_seed(0)
    model = build()
    model.train()
    batch = fake_batch()
    fp32_record, _ = record_teacher(model, batch)
    torch.manual_seed(1)
    fp32_loss = model.loss(**model.data_preprocessor(batch, True))

    model.teacher_precision = 'bf16'
    bf16_record, seen = record_teacher(model, batch)
    # The forward ran in bfloat16; what reaches the losses is float32.
    assert seen == [(torch.bfloat16, True)]
    assert bf16_record.dtype == torch.float32
    assert not torch.equal(bf16_record, fp32_record)
    assert torch.allclose(bf16_record, fp32_record, rtol=0.1, atol=0.05)
    torch.manual_seed(1)
    bf16_loss = model.loss(**model.data_preprocessor(batch, True))
    a, b = fp32_loss['distill.loss_kd'], bf16_loss['distill.loss_kd']
    assert b.dtype == torch.float32 and a > 0
    assert a != b
    assert b.item() == pytest.approx(a.item(), rel=0.05)
    # The student's own losses do not depend on the teacher's precision.
    assert torch.equal(fp32_loss['student.decode.loss_ce'],
                       bf16_loss['student.decode.loss_ce'])


def test_teacher_weights_keep_dtype_and_values_after_bf16_steps():
    torch.manual_seed(0)
    model = build(teacher_precision='bf16')
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.1)))
    before = copy.deepcopy(model.teacher.state_dict())
    student_before = copy.deepcopy(model.architecture.state_dict())
    model.train()
    for _ in range(2):
        log_vars = model.train_step(fake_batch(), wrapper)
    assert log_vars['distill.loss_kd'] > 0
    after = model.teacher.state_dict()
    for key, value in before.items():
        assert after[key].dtype == value.dtype, key
        assert torch.equal(after[key], value), key
    assert any(not torch.equal(v, student_before[k])
               for k, v in model.architecture.state_dict().items())


def test_fpn_teacher_distill_takes_the_precision():
    model = MODELS.build(dict(
        type='mmstructkd.FpnTeacherDistill',
        architecture=dict(cfg_path=STUDENT_CFG),
        teacher=dict(cfg_path=TEACHER_CFG),
        teacher_precision='bf16',
        distiller=dict(
            distiller_cfg(student_source='backbone',
                          teacher_source='backbone', data_idx=3,
                          connector='c'),
            connectors=dict(c=dict(type='ConvModuleConnector',
                                   in_channel=128, out_channel=256)))))
    assert model.teacher_forward_mode == 'feat'
    data = model.data_preprocessor(fake_batch(), True)
    model.run_teacher(data['inputs'], data['data_samples'])
    levels = model.distiller.teacher_recorders.get_record_data('feat')
    assert isinstance(levels, tuple) and len(levels) == 4
    assert all(level.dtype == torch.float32 for level in levels)


def test_cast_floating_walks_containers_and_keeps_integers():
    half = torch.ones(2, dtype=torch.bfloat16)
    labels = torch.ones(2, dtype=torch.long)
    cast = cast_floating(
        (half, [half, labels], dict(x=half), 'text'), torch.float32)
    assert isinstance(cast, tuple) and isinstance(cast[1], list)
    assert cast[0].dtype == cast[1][0].dtype == cast[2]['x'].dtype == \
        torch.float32
    assert cast[1][1] is labels and cast[3] == 'text'
