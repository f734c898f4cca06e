"""Two processes on CPU (gloo) through tools/dist_train.sh: both ranks end
with identical student (and critic) weights, each having seen other data."""
import os
import os.path as osp
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

import mmstructkd  # noqa: F401
from conftest import REPO_ROOT, run_tool, toy_config

CWD = 'cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'
HO = 'skd_pi-pa-ho_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'

# A hook for this test only: every rank writes what it trained.
DUMP_HOOK = textwrap.dedent('''
    import os.path as osp
    import torch
    from mmengine.dist import get_rank
    from mmengine.hooks import Hook
    from mmengine.model import is_model_wrapper
    from mmengine.registry import HOOKS

    @HOOKS.register_module()
    class DumpRankWeightsHook(Hook):
        def before_train(self, runner):
            # After weight initialisation, before the first step.
            model = runner.model
            model = model.module if is_model_wrapper(model) else model
            torch.save({k: v.detach().clone()
                        for k, v in model.named_parameters()},
                       osp.join(runner.work_dir, f'init{get_rank()}.pth'))

        def after_run(self, runner):
            model = runner.model
            wrapped = type(model).__name__
            model = model.module if is_model_wrapper(model) else model
            # Parameters: BN running statistics are per rank by design
            # (plain BN, broadcast_buffers=False).
            state = {k: v.detach() for k, v in model.named_parameters()}
            torch.save(dict(state=state, wrapper=wrapped,
                            teacher_is_submodule=any(
                                m is model.teacher for m in model.modules())),
                       osp.join(runner.work_dir, f'rank{get_rank()}.pth'))
''')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]



@pytest.mark.slow
@pytest.mark.parametrize('config', [CWD, HO])
def test_two_process_training_keeps_ranks_identical(config, tmp_path,
                                                    toy_env, toy_teacher_ckpt):
    hook_dir = tmp_path / 'hook'
    hook_dir.mkdir()
    (hook_dir / 'dump_rank_hook.py').write_text(DUMP_HOOK)
    work_dir = str(tmp_path / 'dist')
    iters = 3
    opts = [
        f'model.teacher_ckpt={toy_teacher_ckpt}', f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={iters}',
        f'default_hooks.checkpoint.interval={iters}',
        'train_dataloader.batch_size=2', 'val_dataloader.batch_size=2',
        'default_hooks.logger.interval=1'
    ]
    test_config = tmp_path / 'dist_config.py'
    test_config.write_text(
        f"_base_ = [{toy_config(config)!r}]\n"
        "custom_imports = dict(imports=['mmstructkd', 'dump_rank_hook'],"
        " allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='mmstructkd.RandomStateHook'),"
        " dict(type='DumpRankWeightsHook')]\n")
    if config == HO:
        opts += [f'param_scheduler.architecture.0.end={iters}',
                 f'param_scheduler.discriminator.0.end={iters}']
    else:
        opts += [f'param_scheduler.0.end={iters}']
    env = dict(os.environ, **toy_env)
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO_ROOT, str(hook_dir), env.get('PYTHONPATH', '')])
    env['PORT'] = str(free_port())
    env['PYTHON'] = sys.executable
    env['OMP_NUM_THREADS'] = '1'
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(test_config), '2',
         '--work-dir', work_dir, '--cfg-options'] + opts,
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=900)
    out = proc.stdout
    assert proc.returncode == 0, out[out.rfind('Traceback'):][-6000:]
    r0 = torch.load(osp.join(work_dir, 'rank0.pth'), weights_only=True)
    r1 = torch.load(osp.join(work_dir, 'rank1.pth'), weights_only=True)
    assert r0['wrapper'] == 'DistillDistributedDataParallel'
    assert not r0['teacher_is_submodule']
    assert set(r0['state']) == set(r1['state'])
    for key, value in r0['state'].items():
        assert torch.equal(value, r1['state'][key]), key
    if config == HO:
        assert any(k.startswith('discriminator.') for k in r0['state'])
    # Training happened: the student moved away from its initialisation,
    # which is the same on both ranks (same seed).
    init0 = torch.load(osp.join(work_dir, 'init0.pth'), weights_only=True)
    init1 = torch.load(osp.join(work_dir, 'init1.pth'), weights_only=True)
    assert set(init0) == set(r0['state'])
    for key, value in init0.items():
        assert torch.equal(value, init1[key]), key
    moved = [k for k, v in init0.items() if not torch.equal(v, r0['state'][k])]
    student = [k for k in init0 if k.startswith('architecture.')]
    assert student and set(moved) & set(student), moved
    # The head the distillation loss acts on, in particular.
    assert 'architecture.decode_head.conv_seg.weight' in moved, moved
    if config == HO:
        assert any(k.startswith('discriminator.') for k in moved), moved
    ckpt = torch.load(osp.join(work_dir, f'iter_{iters}.pth'),
                      weights_only=True, map_location='cpu')
    for key, value in r0['state'].items():
        assert torch.equal(ckpt['state_dict'][key], value), key
    assert 'Distributed training: True' in out
    assert 'distill.loss_' in out
    assert ckpt['meta']['iter'] == iters
