"""Shared fixtures: a tiny toy data set, a toy teacher checkpoint, and
helpers to run the tools and read what they wrote."""
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.registry import DefaultScope

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY_CONFIGS = osp.join(REPO_ROOT, 'configs', 'toy')


def pytest_configure(config):
    # `make test` runs every test; `pytest -m "not slow"` skips the ones
    # that train or benchmark in subprocesses (more than ~20 s each).
    config.addinivalue_line(
        'markers', 'slow: trains or benchmarks in subprocesses (> ~20 s); '
        'deselect with -m "not slow"')


@pytest.fixture(autouse=True)
def restore_default_scope():
    """A Runner built in-process leaves its scope (e.g. 'mmseg') as the
    current default scope, which would make later unprefixed builds resolve
    in that package; every test starts and ends with the same scopes."""
    saved = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


def run_tool(args, env=None, timeout=600, check=True):
    """Run ``python <args>`` from the repo root; return the completed
    process (stdout and stderr together in ``.stdout``)."""
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = REPO_ROOT + os.pathsep + full_env.get(
        'PYTHONPATH', '')
    full_env.update(env or {})
    proc = subprocess.run([sys.executable] + list(args),
                          cwd=REPO_ROOT,
                          env=full_env,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        # Show the traceback rather than the config dump before it.
        out = proc.stdout
        start = out.rfind('Traceback (most recent call last)')
        shown = out[start:] if start >= 0 else out[-6000:]
        raise AssertionError(
            f'{" ".join(args)} exited {proc.returncode}:\n{shown[-8000:]}')
    return proc


@pytest.fixture(scope='session')
def toy_data_root(tmp_path_factory):
    """8 train / 4 val images of 64x64, segmentation and COCO layouts."""
    root = str(tmp_path_factory.mktemp('toy_scenes'))
    run_tool([
        'tools/make_toy_data.py', '--out', root, '--num-train', '8',
        '--num-val', '4', '--size', '64', '--seed', '0'
    ])
    return root


@pytest.fixture(scope='session')
def toy_env(toy_data_root):
    """Environment for tools run on the tiny toy set."""
    return {'TOY_DATA_ROOT': toy_data_root}


def toy_config(name):
    return osp.join(TOY_CONFIGS, name)


# Options that make a toy config run a few iterations and validate once.
def quick_train_options(iters=4, batch=4):
    return [
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        f'default_hooks.checkpoint.interval={iters}',
        'default_hooks.logger.interval=1', f'train_dataloader.batch_size={batch}',
        'val_dataloader.batch_size=4', 'test_dataloader.batch_size=4',
        f'param_scheduler.0.end={iters}'
    ]


TOY_TEACHER = 'pspnet_r34-d8-thin32_1xb8-2k_toyscenes.py'
# The second teacher of the toy multi-teacher config.
TOY_DEEPLABV3_TEACHER = 'deeplabv3_r34-d8-thin32_1xb8-2k_toyscenes.py'


def train_toy_teacher(config, tmp_path_factory, toy_env):
    """``config`` trained for one iteration; its checkpoint."""
    work_dir = str(tmp_path_factory.mktemp(osp.splitext(config)[0]))
    run_tool(['tools/train.py', toy_config(config), '--work-dir',
              work_dir, '--cfg-options', 'train_cfg.max_iters=1',
              'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1',
              'train_dataloader.batch_size=2', 'val_dataloader.batch_size=4'],
             env=toy_env)
    return osp.join(work_dir, 'iter_1.pth')


@pytest.fixture(scope='session')
def toy_teacher_ckpt(tmp_path_factory, toy_env):
    """A toy segmentation teacher trained for one iteration (the tests
    check wiring, not accuracy), shared by the whole session."""
    return train_toy_teacher(TOY_TEACHER, tmp_path_factory, toy_env)


@pytest.fixture(scope='session')
def toy_deeplabv3_teacher_ckpt(tmp_path_factory, toy_env):
    """The toy DeepLabV3 teacher, likewise (multi-teacher tests)."""
    return train_toy_teacher(TOY_DEEPLABV3_TEACHER, tmp_path_factory,
                             toy_env)


def teacher_ckpt_options(config, request):
    """``--cfg-options`` that give the toy distillation ``config`` the
    session's toy teacher checkpoints: ``model.teacher_ckpt=...``, or for
    the multi-teacher config each teacher's ``ckpt``."""
    from mmengine.config import Config
    model = Config.fromfile(toy_config(config)).model
    if 'teachers' not in model:
        ckpt = request.getfixturevalue('toy_teacher_ckpt')
        return [f'model.teacher_ckpt={ckpt}']
    fixtures = dict(pspnet='toy_teacher_ckpt',
                    deeplabv3='toy_deeplabv3_teacher_ckpt')
    return [f'model.teachers.{name}.ckpt='
            f'{request.getfixturevalue(fixtures[name])}'
            for name in model.teachers]


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def scalars(work_dir):
    """The json log lines mmengine's logger wrote (train and val), read by
    the package's one reader (the newest timestamped run of the work dir)."""
    from mmstructkd.utils.training_logs import load_scalars
    return load_scalars(work_dir)