"""End to end: train the toy teacher, distil it into the toy student with
tools/train.py, validate, export the student and load it in plain mmseg."""
import json

import pytest
import torch

import mmstructkd  # noqa: F401  (weights-only loading of Runner checkpoints)

from conftest import (last_checkpoint, quick_train_options, run_tool,
                      scalars, toy_config)

STUDENT = 'pspnet_r18-d8-thin16_1xb8-2k_toyscenes.py'
CWD = 'cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'
PI = 'skd_pi_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'


@pytest.mark.slow
@pytest.mark.parametrize('config, loss_key', [(CWD, 'distill.loss_cwd'),
                                              (PI, 'distill.loss_pi')])
def test_distill_trains_validates_and_exports(config, loss_key, tmp_path,
                                              toy_env, toy_teacher_ckpt):
    work_dir = str(tmp_path / 'distill')
    run_tool(['tools/train.py', toy_config(config), '--work-dir', work_dir,
              '--cfg-options', f'model.teacher_ckpt={toy_teacher_ckpt}'] +
             quick_train_options(iters=4),
             env=toy_env)
    logs = scalars(work_dir)
    train_logs = [x for x in logs if loss_key in x]
    assert len(train_logs) == 4
    assert all(x[loss_key] > 0 for x in train_logs)
    assert all('student.decode.loss_ce' in x for x in train_logs)
    val_logs = [x for x in logs if 'mIoU' in x]
    assert val_logs and 'teacher.mIoU' in val_logs[-1]

    ckpt_path = last_checkpoint(work_dir)
    ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=True)
    keys = list(ckpt['state_dict'])
    assert any(k.startswith('architecture.backbone.') for k in keys)
    # The frozen teacher is rebuilt from toy_teacher_ckpt, never saved.
    assert not any(k.startswith('teacher') for k in keys)

    export_dir = str(tmp_path / 'export')
    run_tool(['tools/model_converters/export_student.py', ckpt_path,
              export_dir])
    # A fresh process that never imports mmstructkd loads the student with
    # plain mmseg, without missing or unexpected keys, and runs inference.
    check = f'''
import sys, torch, numpy as np
from mmseg.apis import init_model, inference_model
model = init_model("{export_dir}/student.py", None, device="cpu")
state = torch.load("{export_dir}/student.pth", map_location="cpu",
                   weights_only=True)["state_dict"]
result = model.load_state_dict(state, strict=True)
assert not result.missing_keys and not result.unexpected_keys, result
model = init_model("{export_dir}/student.py", "{export_dir}/student.pth",
                   device="cpu")
img = (np.random.RandomState(0).rand(64, 64, 3) * 255).astype(np.uint8)
out = inference_model(model, img)
assert out.pred_sem_seg.data.shape[-2:] == (64, 64)
assert "mmstructkd" not in sys.modules
print("STUDENT_OK", type(model).__name__)
'''
    proc = run_tool(['-c', check], env=toy_env)
    assert 'STUDENT_OK EncoderDecoder' in proc.stdout


@pytest.mark.slow
def test_tools_test_evaluates_student(tmp_path, toy_env, toy_teacher_ckpt):
    work_dir = str(tmp_path / 'distill')
    run_tool(['tools/train.py', toy_config(CWD), '--work-dir', work_dir,
              '--cfg-options', f'model.teacher_ckpt={toy_teacher_ckpt}'] +
             quick_train_options(iters=2),
             env=toy_env)
    out = str(tmp_path / 'metrics.json')
    run_tool(['tools/test.py', toy_config(CWD), last_checkpoint(work_dir),
              '--work-dir', str(tmp_path / 'test'), '--out', out,
              '--cfg-options', f'model.teacher_ckpt={toy_teacher_ckpt}',
              'test_dataloader.batch_size=4'],
             env=toy_env)
    with open(out) as f:
        metrics = json.load(f)
    # tools/test.py scores the student: the same checkpoint, on the same
    # images (test_dataloader = val_dataloader), scored as the validation
    # at the end of training scored the student ...
    val = [x for x in scalars(work_dir) if 'mIoU' in x][-1]
    assert val['step'] == 2
    assert metrics['mIoU'] == pytest.approx(val['mIoU'], abs=1e-6)
    # ... which is not the teacher's score (logged next to it) whenever the
    # two models score differently.
    if val['teacher.mIoU'] != val['mIoU']:
        assert metrics['mIoU'] != pytest.approx(val['teacher.mIoU'],
                                                abs=1e-6)
    assert not any(k.startswith('teacher.') for k in metrics), metrics
