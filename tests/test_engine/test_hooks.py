"""The loss-weight scheduler and the teacher check, with mmengine's Runner."""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mmstructkd  # noqa: F401
from conftest import run_tool, scalars, toy_config
from mmstructkd.engine.hooks import (DistillLossWeightScheduleHook,
                                     TeacherCheckError, loss_weight_factor)

CWD = 'cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'


def naive_factor(i, max_iters, warmup=0, policy='constant', steps=(),
                 gamma=0.1, min_factor=0.0, stop=None):
    if stop is not None and i >= stop:
        return 0.0
    if policy == 'constant':
        f = 1.0
    elif policy == 'step':
        f = 1.0
        for s in steps:
            if i >= s:
                f *= gamma
    else:
        t = min(max(i - warmup, 0) / max(max_iters - warmup, 1), 1.0)
        f = min_factor + (1 - min_factor) * (1 + math.cos(math.pi * t)) / 2
    if warmup and i < warmup:
        f *= i / warmup
    return f


@pytest.mark.parametrize('kwargs', [
    dict(), dict(warmup=10), dict(policy='step', steps=(30, 60), gamma=0.5),
    dict(policy='cosine', warmup=5, min_factor=0.1), dict(stop=40),
    dict(policy='cosine', stop=70, warmup=20)
])
def test_factor_matches_naive(kwargs):
    names = dict(warmup='warmup_iters', stop='stop_iter')
    call = {names.get(k, k): v for k, v in kwargs.items()}
    for i in range(0, 100, 3):
        assert loss_weight_factor(i, 100, **call) == pytest.approx(
            naive_factor(i, 100, **kwargs)), i


def test_bad_schedule_keys():
    with pytest.raises(KeyError, match='warmup'):
        DistillLossWeightScheduleHook(schedules=dict(loss=dict(warmup=10)))
    with pytest.raises(ValueError, match='policy'):
        DistillLossWeightScheduleHook(
            schedules=dict(loss=dict(policy='linear')))



def make_runner(work_dir, teacher_ckpt, hooks, iters=4, monkeypatch=None,
                toy_env=None, teacher_ckpt_strict=True):
    for key, value in (toy_env or {}).items():
        monkeypatch.setenv(key, value)
    cfg = Config.fromfile(toy_config(CWD))
    cfg.work_dir = work_dir
    cfg.model.teacher_ckpt = teacher_ckpt
    cfg.model.teacher_ckpt_strict = teacher_ckpt_strict
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = 1
    cfg.train_dataloader.batch_size = 2
    cfg.val_dataloader.batch_size = 2
    cfg.param_scheduler[0].end = iters
    cfg.custom_hooks = hooks
    # Unique names: in-process Runners must not share a visualizer.
    cfg.experiment_name = osp.basename(work_dir)
    cfg.visualizer.name = f'visualizer_{osp.basename(work_dir)}'
    return Runner.from_cfg(cfg)


def test_schedule_hook_warmup_stop_and_teacher_skip(tmp_path, toy_teacher_ckpt,
                                                    monkeypatch, toy_env):
    runner = make_runner(
        str(tmp_path / 'sched'), toy_teacher_ckpt,
        [dict(type='mmstructkd.DistillLossWeightScheduleHook',
              schedules=dict(loss_cwd=dict(warmup_iters=2)),
              stop_distill_iter=3, skip_teacher_after_stop=True)],
        iters=4, monkeypatch=monkeypatch, toy_env=toy_env)
    teacher_calls = []
    runner.model.teacher.decode_head.conv_seg.register_forward_hook(
        lambda *a: teacher_calls.append(runner.iter))
    runner.train()
    weights = runner.message_hub.get_scalar(
        'train/distill_weight.loss_cwd').data[0]
    # loss_weight 5 x factors 0, 0.5, 1 (warm-up over 2), then 0 (stopped).
    assert list(weights) == pytest.approx([0.0, 2.5, 5.0, 0.0])
    # The log (scalars.json) has each iteration's weight, not a window mean.
    logged = [x['distill_weight.loss_cwd'] for x in scalars(runner.work_dir)
              if 'distill_weight.loss_cwd' in x]
    assert logged == pytest.approx([0.0, 2.5, 5.0, 0.0])
    # A loss whose factor is 0 is not computed at all (iterations 0 and 3).
    cwd = runner.message_hub.get_scalar('train/distill.loss_cwd').data[0]
    assert len(cwd) == 2 and all(v > 0 for v in cwd)
    # The teacher ran at iterations 0..2 only (plus the teacher validation).
    train_calls = [i for i in teacher_calls if i < 4]
    assert sorted(set(train_calls)) == [0, 1, 2]
    assert runner.model.skip_teacher_forward


def test_teacher_check_stops_on_low_metric(tmp_path, toy_teacher_ckpt,
                                           monkeypatch, toy_env):
    runner = make_runner(
        str(tmp_path / 'check'), toy_teacher_ckpt,
        [dict(type='mmstructkd.TeacherCheckHook', metric='mIoU',
              min_metric=99.0, max_batches=1)],
        monkeypatch=monkeypatch, toy_env=toy_env)
    with pytest.raises(TeacherCheckError, match='below the configured floor'):
        runner.train()
    assert runner.iter == 0
    # No optimizer step ran: the SGD momentum buffers were never created.
    assert not runner.optim_wrapper.optimizer.state


def test_teacher_check_passes_and_rejects_key_mismatch(tmp_path,
                                                       toy_teacher_ckpt,
                                                       monkeypatch, toy_env):
    runner = make_runner(
        str(tmp_path / 'ok'), toy_teacher_ckpt,
        [dict(type='mmstructkd.TeacherCheckHook', metric='mIoU',
              min_metric=0.0, max_batches=1)],
        iters=1, monkeypatch=monkeypatch, toy_env=toy_env)
    runner.train()
    assert runner.iter == 1

    bad = str(tmp_path / 'bad_teacher.pth')
    state = torch.load(toy_teacher_ckpt, map_location='cpu', weights_only=True)
    state['state_dict'] = {
        k: v for k, v in state['state_dict'].items()
        if not k.startswith('decode_head')
    }
    torch.save(state, bad)
    # Strict loading (the default) refuses it when the model is built; not
    # strict, it loads with a warning and the hook stops the run.
    with pytest.raises(RuntimeError, match='keys missing in the checkpoint'):
        make_runner(str(tmp_path / 'strict'), bad, [], iters=1,
                    monkeypatch=monkeypatch, toy_env=toy_env)
    runner = make_runner(
        str(tmp_path / 'bad'), bad,
        [dict(type='mmstructkd.TeacherCheckHook')], iters=1,
        monkeypatch=monkeypatch, toy_env=toy_env, teacher_ckpt_strict=False)
    with pytest.raises(TeacherCheckError, match='missing keys'):
        runner.train()
    assert runner.iter == 0


def test_unreachable_teacher_url_fails_before_training():
    from mmstructkd.registry import MODELS
    cfg = Config.fromfile(toy_config(CWD))
    cfg.model.teacher_ckpt = 'http://127.0.0.1:9/teacher.pth'
    with pytest.raises(RuntimeError) as info:
        MODELS.build(cfg.model)
    assert 'http://127.0.0.1:9/teacher.pth' in str(info.value)
    assert 'has not started' in str(info.value)
