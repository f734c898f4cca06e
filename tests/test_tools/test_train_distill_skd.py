"""SKD on the toy data with mmengine's Runner: pixel-wise + pair-wise
(pooled and full resolution) and the adversarial step."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mmstructkd  # noqa: F401
from conftest import (last_checkpoint, quick_train_options, run_tool,
                      scalars, toy_config)


PA = 'skd_pi-pa_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'
PA_FULL = ('skd_pi-pa-fullres_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_'
           'toyscenes.py')
PA_HO = 'skd_pi-pa-ho_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'



@pytest.mark.slow
@pytest.mark.parametrize('config, scale', [(PA, 0.5), (PA_FULL, None)])
def test_pixel_and_pair_wise_train(config, scale, tmp_path, toy_env,
                                   toy_teacher_ckpt):
    work_dir = str(tmp_path / 'skd')
    run_tool(['tools/train.py', toy_config(config), '--work-dir', work_dir,
              '--cfg-options', f'model.teacher_ckpt={toy_teacher_ckpt}'] +
             quick_train_options(iters=3), env=toy_env)
    train = [x for x in scalars(work_dir) if 'distill.loss_pa' in x]
    assert len(train) == 3
    assert all(x['distill.loss_pa'] > 0 and x['distill.loss_pi'] > 0
               for x in train)
    cfg = Config.fromfile(toy_config(config))
    assert cfg.model.distiller.distill_losses.loss_pa.scale == scale


def _runner(config, work_dir, teacher_ckpt, iters):
    cfg = Config.fromfile(toy_config(config))
    cfg.work_dir = work_dir
    cfg.model.teacher_ckpt = teacher_ckpt
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = 1
    cfg.train_dataloader.batch_size = 4
    for schedulers in cfg.param_scheduler.values():
        schedulers[0].end = iters
    # Unique names: in-process Runners must not share a visualizer.
    cfg.experiment_name = osp.basename(work_dir)
    cfg.visualizer.name = f'visualizer_{osp.basename(work_dir)}'
    return Runner.from_cfg(cfg)


@pytest.mark.slow
def test_adversarial_step_updates_student_and_critic_not_teacher(
        tmp_path, toy_env, toy_teacher_ckpt, monkeypatch):
    for key, value in toy_env.items():
        monkeypatch.setenv(key, value)
    runner = _runner(PA_HO, str(tmp_path / 'ho'), toy_teacher_ckpt, iters=3)
    model = runner.model
    teacher_before = copy.deepcopy(model.teacher.state_dict())
    snapshots = {}

    def snapshot(*args, **kwargs):
        # After init_weights, before the first step.
        if 'student' not in snapshots:
            snapshots['student'] = copy.deepcopy(
                model.architecture.state_dict())
            snapshots['critic'] = copy.deepcopy(
                model.discriminator.state_dict())

    from mmengine.hooks import Hook

    class Snapshot(Hook):
        priority = 'VERY_LOW'
        before_train_iter = snapshot

    runner.register_hook(Snapshot())
    runner.train()

    def changed(before, module):
        return [k for k, v in module.state_dict().items()
                if v.is_floating_point() and not torch.equal(v, before[k])]

    assert any('backbone' in k for k in changed(snapshots['student'],
                                                model.architecture))
    assert any(k.endswith('weight.original') for k in changed(
        snapshots['critic'],
                                            model.discriminator))
    assert changed(teacher_before, model.teacher) == []
    # The critic is in its own optimizer, not in the student's.
    wrappers = runner.optim_wrapper
    critic_ids = {id(p) for p in model.discriminator.parameters()}
    student_opt = {id(p) for g in wrappers['architecture'].param_groups
                   for p in g['params']}
    critic_opt = {id(p) for g in wrappers['discriminator'].param_groups
                  for p in g['params']}
    assert critic_ids == critic_opt and not critic_ids & student_opt
    logs = scalars(str(tmp_path / 'ho'))
    train = [x for x in logs if 'distill.loss_ho' in x]
    assert len(train) == 3
    for key in ('disc.loss_d_real', 'disc.loss_d_fake', 'disc.loss_gp',
                'distill.loss_pa', 'distill.loss_pi'):
        assert all(key in x for x in train), key
    # The checkpoint holds the critic and both optimizers.
    ckpt = torch.load(last_checkpoint(str(tmp_path / 'ho')),
                      map_location='cpu', weights_only=True)
    assert any(k.startswith('discriminator.') for k in ckpt['state_dict'])
    assert set(ckpt['optimizer']) >= {'architecture', 'discriminator'}
