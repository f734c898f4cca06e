"""Non-finite values through real training runs (tools/train.py's main, in
process, on the toy set with thin models).

* The guard skips and counts NaN steps (logged ``nonfinite.skipped``), puts
  back the BatchNorm statistics a skipped forward changed, and stops after
  ``max_nonfinite_steps`` in a row; every checkpoint written is finite and
  ``last_checkpoint`` names the last one.
* An update that leaves NaN in the weights stops training at once.
* A plain model (no guard) diverging: ``FiniteCheckpointHook`` (put in place
  by tools/train.py) refuses the checkpoint and keeps the previous one.
* ``--resume`` skips non-finite and truncated checkpoints, continues from the
  last good one with the guard's counters, or starts from scratch, saying
  so, when there is none.
"""
import importlib.util
import io
import logging
import os
import os.path as osp
import shutil
from contextlib import contextmanager

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import MMLogger

from conftest import REPO_ROOT, last_checkpoint, scalars, toy_config
from mmstructkd.engine.hooks import (FiniteCheckpointHook,
                                     NonFiniteCheckpointError)
from mmstructkd.engine.runner import (is_complete_checkpoint,
                                      why_not_resumable)
from mmstructkd.models.utils import NonFiniteStateError
from mmstructkd.registry import HOOKS

CWD = 'cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'
PLAIN = 'pspnet_r18-d8-thin16_1xb8-2k_toyscenes.py'
NAN, INF = float('nan'), float('inf')


@HOOKS.register_module(force=True)
class PoisonBatchesHook(Hook):
    """Test only: the images of the batches at ``iters`` become NaN."""

    def __init__(self, iters=()):
        self.iters = set(iters)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter in self.iters:
            data_batch['inputs'] = [torch.full(x.shape, NAN)
                                    for x in data_batch['inputs']]


@HOOKS.register_module(force=True)
class LrBombHook(Hook):
    """Test only: from iteration ``at`` on, the learning rate is Inf."""

    def __init__(self, at=0):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.at:
            for group in runner.optim_wrapper.param_groups:
                group['lr'] = INF


def train_tool():
    spec = importlib.util.spec_from_file_location(
        'mmstructkd_train_tool', osp.join(REPO_ROOT, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAIN = train_tool()


def config_with_hooks(tmp_path, config, hooks):
    path = tmp_path / f'config_{len(list(tmp_path.iterdir()))}.py'
    path.write_text(
        f'_base_ = [{toy_config(config)!r}]\n'
        f"custom_hooks = [dict(type='mmstructkd.RandomStateHook')] + "
        f'{hooks!r}\n')
    return str(path)


def train(config, work_dir, iters, extra=(), resume=False, teacher=None):
    """tools/train.py's main, in process (a Runner per call)."""
    name = osp.basename(work_dir) + ('_resumed' if resume else '')
    options = [
        # No validation: these tests are about training and checkpoints.
        f'train_cfg.max_iters={iters}', 'train_cfg.val_interval=1000',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=10',
        'default_hooks.logger.interval=1', 'train_dataloader.batch_size=2',
        'val_dataloader.batch_size=4', f'param_scheduler.0.end={iters}',
        # In-process Runners must not share a visualizer.
        f'experiment_name={name}', f'visualizer.name=vis_{name}'
    ] + list(extra)
    if teacher is not None:
        options.append(f'model.teacher_ckpt={teacher}')
    argv = [config, '--work-dir', work_dir] + (['--resume'] if resume
                                                else [])
    TRAIN.main(argv + ['--cfg-options'] + options)


@contextmanager
def captured_log():
    """What tools/train.py logs before its Runner (and logger) exist."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def iter_files(work_dir):
    return sorted(f for f in os.listdir(work_dir) if f.startswith('iter_'))


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def test_skip_count_stop_then_resume_from_last_finite(
        tmp_path, toy_env, toy_teacher_ckpt, monkeypatch):
    for key, value in toy_env.items():
        monkeypatch.setenv(key, value)
    work_dir = str(tmp_path / 'run')
    poisoned = config_with_hooks(
        tmp_path, CWD, [dict(type='mmstructkd.PoisonBatchesHook',
                             iters=[1, 2])])
    with pytest.raises(RuntimeError) as info:
        train(poisoned, work_dir, iters=4, teacher=toy_teacher_ckpt,
              extra=['model.max_nonfinite_steps=2'])
    message = str(info.value)
    assert 'NonFiniteGuard(student step)' in message
    assert '2 steps in a row (at iteration 2' in message
    # Iteration 1 was skipped and counted (logged); iteration 2 stopped the
    # run before its checkpoint.
    skipped = [x['nonfinite.skipped'] for x in scalars(work_dir)
               if 'nonfinite.skipped' in x]
    assert skipped == [0, 1]
    assert iter_files(work_dir) == ['iter_1.pth', 'iter_2.pth']
    # The skipped forward ran NaN images through BatchNorm; the statistics
    # were put back, so every checkpoint is finite...
    for name in iter_files(work_dir):
        assert why_not_resumable(osp.join(work_dir, name)) is None, name
    newest = osp.join(work_dir, 'iter_2.pth')
    assert last_checkpoint(work_dir) == newest
    saved = load(newest)
    # ... and the skipped step changed no statistic since iter_1.
    first = load(osp.join(work_dir, 'iter_1.pth'))['state_dict']
    for key, value in saved['state_dict'].items():
        if 'running_' in key or 'num_batches' in key:
            assert torch.equal(value, first[key]), key
    # The guards' counters (student, critic): checked, skipped, in a row.
    assert saved['state_dict']['_extra_state'].tolist() == [[2, 1, 1],
                                                            [0, 0, 0]]

    # An older version of the run wrote a non-finite newest checkpoint;
    # --resume skips it and continues from iter_2, without the poison.
    bad = osp.join(work_dir, 'iter_3.pth')
    saved['state_dict']['architecture.backbone.stem.1.running_var'][0] = NAN
    torch.save(saved, bad)
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(bad)
    with captured_log() as log:
        train(toy_config(CWD), work_dir, iters=4, resume=True,
              teacher=toy_teacher_ckpt, extra=['model.max_nonfinite_steps=2'])
    log = log.getvalue()
    assert (f'checkpoint {bad} holds NaN/Inf in 1 tensors (state_dict.'
            'architecture.backbone.stem.1.running_var); skipping it.') in log
    assert f'resuming from {newest} instead.' in log
    final = load(osp.join(work_dir, 'iter_4.pth'))
    assert final['meta']['iter'] == 4
    # Counting went on from the checkpoint: 2 more good steps.
    assert final['state_dict']['_extra_state'].tolist()[0] == [4, 1, 0]
    skipped = [x['nonfinite.skipped'] for x in scalars(work_dir)
               if 'nonfinite.skipped' in x]
    assert skipped == [1, 1]  # the resumed run's log
    assert why_not_resumable(bad) is None  # rewritten by the resumed run


def test_update_to_nonfinite_weights_stops_before_its_checkpoint(
        tmp_path, toy_env, toy_teacher_ckpt, monkeypatch):
    for key, value in toy_env.items():
        monkeypatch.setenv(key, value)
    work_dir = str(tmp_path / 'bomb')
    config = config_with_hooks(tmp_path, CWD,
                               [dict(type='mmstructkd.LrBombHook', at=2)])
    with pytest.raises(NonFiniteStateError) as info:
        train(config, work_dir, iters=4, teacher=toy_teacher_ckpt)
    message = str(info.value)
    assert 'after the update at iteration 2' in message
    assert 'architecture.' in message
    assert iter_files(work_dir) == ['iter_1.pth', 'iter_2.pth']
    assert last_checkpoint(work_dir) == osp.join(work_dir, 'iter_2.pth')
    assert why_not_resumable(last_checkpoint(work_dir)) is None


def test_plain_model_diverging_checkpoint_refused(tmp_path, toy_env,
                                                  monkeypatch):
    """No guard in a plain mmseg model: its NaN update reaches the
    checkpoint, which tools/train.py's FiniteCheckpointHook refuses, before
    removing the older one (max_keep_ckpts=1)."""
    for key, value in toy_env.items():
        monkeypatch.setenv(key, value)
    work_dir = str(tmp_path / 'plain')
    config = config_with_hooks(
        tmp_path, PLAIN, [dict(type='mmstructkd.PoisonBatchesHook',
                               iters=[1])])
    with pytest.raises(NonFiniteCheckpointError) as info:
        train(config, work_dir, iters=3,
              extra=['default_hooks.checkpoint.max_keep_ckpts=1'])
    message = str(info.value)
    first = osp.join(work_dir, 'iter_1.pth')
    assert 'refusing to write iter_2.pth at iteration 2' in message
    assert 'state_dict.backbone.' in message
    assert f'last_checkpoint still names {first}' in message
    assert iter_files(work_dir) == ['iter_1.pth']
    assert last_checkpoint(work_dir) == first
    assert why_not_resumable(first) is None
    # The config stored in the checkpoint still names mmengine's hook.
    assert 'FiniteCheckpointHook' not in load(first)['meta']['cfg']


def test_checkpoint_assembled_with_nan_is_refused():
    """Any writer of runner.save_checkpoint: the assembled checkpoint is
    checked too (here the optimizer's momentum)."""
    hook = FiniteCheckpointHook(interval=1)
    checkpoint = dict(
        state_dict={'conv.weight': torch.ones(2)},
        optimizer=dict(state={0: dict(momentum_buffer=torch.tensor(
            [1.0, INF]))}, param_groups=[dict(lr=0.1, params=[0])]),
        message_hub=dict(log_scalars=dict(loss=NAN)))  # a log, not a state
    runner = type('Runner', (), dict(iter=7))()
    with pytest.raises(NonFiniteCheckpointError) as info:
        hook.before_save_checkpoint(runner, checkpoint)
    message = str(info.value)
    assert 'at iteration 8' in message
    assert '1 tensors are NaN or Inf: optimizer.state.0.momentum_buffer' \
        in message
    checkpoint['optimizer']['state'][0]['momentum_buffer'][1] = 0.0
    hook.before_save_checkpoint(runner, checkpoint)


def test_resume_with_only_a_truncated_checkpoint_starts_from_scratch(
        tmp_path, toy_env, toy_teacher_ckpt, monkeypatch):
    for key, value in toy_env.items():
        monkeypatch.setenv(key, value)
    work_dir = tmp_path / 'cut'
    work_dir.mkdir()
    cut = str(work_dir / 'iter_2.pth')
    shutil.copy(toy_teacher_ckpt, cut)
    with open(cut, 'r+b') as f:
        f.truncate(osp.getsize(cut) // 2)
    (work_dir / 'last_checkpoint').write_text(cut)
    with captured_log() as log:
        train(toy_config(CWD), str(work_dir), iters=1, resume=True,
              teacher=toy_teacher_ckpt)
    log = log.getvalue()
    assert f'checkpoint {cut} is incomplete (an interrupted save?); ' \
        'skipping it.' in log
    assert f'no complete checkpoint with finite values in {work_dir}' in log
    assert f'--resume: no checkpoint to resume from in {work_dir}; ' \
        'training starts from scratch (iteration 0).' in log
    assert 'instead' not in log  # nothing else was resumed from
    fresh = str(work_dir / 'iter_1.pth')
    assert is_complete_checkpoint(fresh)
    assert load(fresh)['meta']['iter'] == 1
    assert last_checkpoint(str(work_dir)) == fresh
