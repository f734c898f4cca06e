"""Exact resume: 2K iterations straight equal K + K with --resume; an
interrupted (truncated) checkpoint is skipped with a warning."""
import os
import os.path as osp
import shutil

import pytest
import torch

import mmstructkd  # noqa: F401
from conftest import run_tool, toy_config
from mmstructkd.engine.runner import (find_resumable_checkpoint,
                                      is_complete_checkpoint)

CWD = 'cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'
HO = 'skd_pi-pa-ho_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'
K = 2



def options(config, toy_teacher_ckpt):
    opts = [
        f'model.teacher_ckpt={toy_teacher_ckpt}', f'train_cfg.max_iters={2 * K}',
        # Validation in the middle too: it must not disturb the trajectory.
        f'train_cfg.val_interval={K}', f'default_hooks.checkpoint.interval={K}',
        'default_hooks.checkpoint.max_keep_ckpts=5',
        'train_dataloader.batch_size=4', 'val_dataloader.batch_size=4'
    ]
    if config == HO:
        opts += [f'param_scheduler.architecture.0.end={2 * K}',
                 f'param_scheduler.discriminator.0.end={2 * K}']
    else:
        opts += [f'param_scheduler.0.end={2 * K}']
    return opts


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def assert_same(a, b, where):
    if isinstance(a, torch.Tensor):
        assert torch.allclose(a.float(), b.float(), rtol=1e-6, atol=1e-7), \
            f'{where}: max diff {(a.float() - b.float()).abs().max()}'
    elif isinstance(a, dict):
        assert set(a) == set(b), f'{where}: keys {set(a) ^ set(b)}'
        for key in a:
            assert_same(a[key], b[key], f'{where}.{key}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{where}[{i}]')
    elif hasattr(a, 'shape'):  # numpy arrays (generator states)
        assert (a == b).all(), where
    else:
        assert a == b, f'{where}: {a} != {b}'


@pytest.mark.slow
@pytest.mark.parametrize('config', [CWD, HO])
def test_resume_continues_exactly(config, tmp_path, toy_env, toy_teacher_ckpt):
    straight = str(tmp_path / 'straight')
    run_tool(['tools/train.py', toy_config(config), '--work-dir', straight,
              '--cfg-options'] + options(config, toy_teacher_ckpt), env=toy_env)

    # The same run "killed" after K iterations: only its first checkpoint
    # exists; --resume must continue to 2K.
    resumed = str(tmp_path / 'resumed')
    os.makedirs(resumed)
    shutil.copy(osp.join(straight, f'iter_{K}.pth'), resumed)
    with open(osp.join(resumed, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(resumed, f'iter_{K}.pth'))
    proc = run_tool(['tools/train.py', toy_config(config), '--work-dir',
                     resumed, '--resume', '--cfg-options'] +
                    options(config, toy_teacher_ckpt), env=toy_env)
    assert f'resumed' in proc.stdout.lower() or 'resume' in proc.stdout

    a = load(osp.join(straight, f'iter_{2 * K}.pth'))
    b = load(osp.join(resumed, f'iter_{2 * K}.pth'))
    assert a['meta']['iter'] == b['meta']['iter'] == 2 * K
    # Student, connectors, critic, the guards' counters (extra state).
    assert_same(a['state_dict'], b['state_dict'], 'state_dict')
    assert any(k.startswith('architecture.') for k in a['state_dict'])
    if config == HO:
        assert any(k.startswith('discriminator.') for k in a['state_dict'])
    assert_same(a['optimizer'], b['optimizer'], 'optimizer')
    assert_same(a['param_schedulers'], b['param_schedulers'],
                'param_schedulers')
    assert_same(a['random_state'], b['random_state'], 'random_state')
    # The run must actually have moved between K and 2K.
    first = load(osp.join(straight, f'iter_{K}.pth'))['state_dict']
    moved = [k for k, v in a['state_dict'].items()
             if torch.is_tensor(v) and v.is_floating_point()
             and not torch.equal(v, first[k])]
    assert moved


@pytest.mark.slow
def test_truncated_checkpoint_falls_back(tmp_path, toy_env, toy_teacher_ckpt):
    work_dir = str(tmp_path / 'run')
    run_tool(['tools/train.py', toy_config(CWD), '--work-dir', work_dir,
              '--cfg-options'] + options(CWD, toy_teacher_ckpt), env=toy_env)
    newest = osp.join(work_dir, f'iter_{2 * K}.pth')
    assert is_complete_checkpoint(newest)
    # An interrupted save: the file is cut short.
    size = osp.getsize(newest)
    with open(newest, 'r+b') as f:
        f.truncate(size // 2)
    assert not is_complete_checkpoint(newest)
    assert find_resumable_checkpoint(work_dir) == osp.join(
        work_dir, f'iter_{K}.pth')
    proc = run_tool(['tools/train.py', toy_config(CWD), '--work-dir',
                     work_dir, '--resume', '--cfg-options'] +
                    options(CWD, toy_teacher_ckpt), env=toy_env)
    assert 'is incomplete' in proc.stdout
    assert f'iter_{K}.pth' in proc.stdout
    # Training went on from K and wrote a whole checkpoint at 2K again.
    assert is_complete_checkpoint(newest)
    assert load(newest)['meta']['iter'] == 2 * K
