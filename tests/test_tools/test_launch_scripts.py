"""The shell launchers: they parse, pass their arguments to the tools
exactly (a stand-in python/srun records them), and really launch a training
(one process, one iteration) and a test."""
import json
import math
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

import mmstructkd  # noqa: F401  (weights-only loading of Runner checkpoints)
from conftest import REPO_ROOT, last_checkpoint, scalars, toy_config

SCRIPTS = ['tools/dist_train.sh', 'tools/dist_test.sh', 'tools/slurm_train.sh']
CWD = 'cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'
TEACHER = 'pspnet_r34-d8-thin32_1xb8-2k_toyscenes.py'
ONE_ITER = ['train_cfg.max_iters=1', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1',
            'default_hooks.logger.interval=1', 'param_scheduler.0.end=1',
            'train_dataloader.batch_size=2', 'val_dataloader.batch_size=4']


@pytest.mark.parametrize('script', SCRIPTS)
def test_script_syntax(script):
    proc = subprocess.run(['bash', '-n', osp.join(REPO_ROOT, script)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# A stand-in interpreter: writes its arguments (one per line) and the
# PYTHONPATH it was given, as JSON, to $ARGS_OUT.
RECORDER = '''#!{python}
import json, os, sys
with open(os.environ['ARGS_OUT'], 'w') as f:
    json.dump(dict(argv=sys.argv[1:],
                   pythonpath=os.environ.get('PYTHONPATH', '')), f)
'''


def recorder(tmp_path, name):
    path = tmp_path / name
    path.write_text(RECORDER.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


def run_script(args, env, timeout=60):
    proc = subprocess.run(['bash'] + args, cwd=REPO_ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    return proc


LAUNCH = ['-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1',
          '--master_addr=10.1.2.3', '--nproc_per_node=3',
          '--master_port=12345']


@pytest.mark.parametrize('script, args, expected', [
    ('tools/dist_train.sh',
     ['my config.py', '3', '--work-dir', 'work dir', '--cfg-options', 'a=1'],
     LAUNCH + [osp.join(REPO_ROOT, 'tools', 'train.py'), 'my config.py',
               '--launcher', 'pytorch', '--work-dir', 'work dir',
               '--cfg-options', 'a=1']),
    ('tools/dist_test.sh',
     ['my config.py', 'ckpt.pth', '3', '--out', 'm e.json'],
     LAUNCH + [osp.join(REPO_ROOT, 'tools', 'test.py'), 'my config.py',
               'ckpt.pth', '--launcher', 'pytorch', '--out', 'm e.json']),
])
def test_torchrun_scripts_pass_arguments(script, args, expected, tmp_path):
    out = tmp_path / 'args.json'
    env = dict(os.environ, PYTHON=recorder(tmp_path, 'python'),
               ARGS_OUT=str(out), NNODES='2', NODE_RANK='1',
               MASTER_ADDR='10.1.2.3', PORT='12345', PYTHONPATH='/elsewhere')
    proc = run_script([script] + args, env)
    assert proc.returncode == 0, proc.stdout
    called = json.loads(out.read_text())
    # Every argument arrives whole (spaces included), in order.
    assert called['argv'] == expected
    assert called['pythonpath'].split(os.pathsep) == [REPO_ROOT,
                                                      '/elsewhere']


def test_torchrun_scripts_need_their_positional_arguments(tmp_path):
    out = tmp_path / 'args.json'
    env = dict(os.environ, PYTHON=recorder(tmp_path, 'python'),
               ARGS_OUT=str(out))
    for script, args in (('tools/dist_train.sh', ['cfg.py']),
                         ('tools/dist_test.sh', ['cfg.py', 'ckpt.pth'])):
        proc = run_script([script] + args, env)
        assert proc.returncode != 0, (script, proc.stdout)
        assert not out.exists(), script


def test_slurm_script_builds_srun_command(tmp_path):
    # A stand-in srun that prints what it was asked to run.
    fake = tmp_path / 'srun'
    fake.write_text('#!/usr/bin/env bash\necho "SRUN $*"\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', GPUS='4',
               GPUS_PER_NODE='4')
    proc = subprocess.run(
        ['bash', 'tools/slurm_train.sh', 'gpu', 'kd', 'my_config.py',
         'work_dirs/kd', '--amp'], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith('SRUN -p gpu --job-name=kd --gres=gpu:4')
    assert '--ntasks=4' in line and 'tools/train.py my_config.py' in line
    assert '--launcher=slurm' in line and line.endswith('--amp')


# ----------------------------------------------------------------------
# Real launches: one process on CPU (gloo), one iteration.
# ----------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def launch_env(toy_env, **extra):
    env = dict(os.environ, **toy_env)
    env.update(PYTHON=sys.executable, PORT=str(free_port()),
               OMP_NUM_THREADS='1', **extra)
    return env


def check_one_iteration_distill_run(proc, work_dir, launcher):
    out = proc.stdout
    assert proc.returncode == 0, out[out.find('Traceback'):][:6000]
    assert f'Distributed launcher: {launcher}' in out
    assert 'Distributed training: True' in out
    ckpt_path = last_checkpoint(work_dir)
    assert osp.basename(ckpt_path) == 'iter_1.pth'
    ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=True)
    assert ckpt['meta']['iter'] == 1
    train = [x for x in scalars(work_dir) if 'distill.loss_cwd' in x]
    assert len(train) == 1 and math.isfinite(train[0]['distill.loss_cwd'])


@pytest.mark.slow
def test_dist_train_sh_trains_one_process(tmp_path, toy_env,
                                          toy_teacher_ckpt):
    work_dir = str(tmp_path / 'dist_train')
    proc = run_script(
        ['tools/dist_train.sh', toy_config(CWD), '1', '--work-dir', work_dir,
         '--cfg-options', f'model.teacher_ckpt={toy_teacher_ckpt}'] +
        ONE_ITER, launch_env(toy_env), timeout=600)
    check_one_iteration_distill_run(proc, work_dir, 'pytorch')


# srun stand-in: records its arguments, then runs the task it was given
# (what follows srun's own options) as the single task of a job.
FAKE_SRUN = '''#!/usr/bin/env bash
printf '%s\\n' "$@" > "$SRUN_ARGS_OUT"
while [ "$#" -gt 0 ] && [ "$1" != "$PYTHON" ]; do shift; done
[ "$#" -gt 0 ] || { echo "srun stand-in: no $PYTHON in the command"; exit 3; }
export SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_NODELIST=localhost
export RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1
export MASTER_PORT="$PORT"
exec "$@"
'''


@pytest.mark.slow
def test_slurm_train_sh_trains_through_srun(tmp_path, toy_env,
                                            toy_teacher_ckpt):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(FAKE_SRUN)
    (bin_dir / 'srun').chmod(0o755)
    args_out = tmp_path / 'srun_args.txt'
    work_dir = str(tmp_path / 'slurm_train')
    env = launch_env(toy_env, PATH=f'{bin_dir}:{os.environ["PATH"]}',
                     GPUS='1', GPUS_PER_NODE='1', SRUN_ARGS_OUT=str(args_out))
    proc = run_script(
        ['tools/slurm_train.sh', 'cpu', 'kd-test', toy_config(CWD), work_dir,
         '--cfg-options', f'model.teacher_ckpt={toy_teacher_ckpt}'] +
        ONE_ITER, env, timeout=600)
    check_one_iteration_distill_run(proc, work_dir, 'slurm')
    srun_args = args_out.read_text().splitlines()
    assert srun_args[:2] == ['-p', 'cpu']
    assert '--job-name=kd-test' in srun_args and '--ntasks=1' in srun_args
    task = srun_args[srun_args.index(sys.executable):]
    assert task[:5] == [sys.executable, '-u',
                        osp.join(REPO_ROOT, 'tools', 'train.py'),
                        toy_config(CWD), f'--work-dir={work_dir}']
    assert '--launcher=slurm' in task


@pytest.mark.slow
def test_dist_test_sh_tests_one_process(tmp_path, toy_env, toy_teacher_ckpt):
    out = tmp_path / 'metrics.json'
    proc = run_script(
        ['tools/dist_test.sh', toy_config(TEACHER), toy_teacher_ckpt, '1',
         '--work-dir', str(tmp_path / 'dist_test'), '--out', str(out),
         '--cfg-options', 'test_dataloader.batch_size=4'],
        launch_env(toy_env), timeout=600)
    output = proc.stdout
    assert proc.returncode == 0, output[output.find('Traceback'):][:6000]
    assert 'Distributed launcher: pytorch' in output
    metrics = json.loads(out.read_text())
    # The checkpoint's own validation (same images: test = val loader).
    val = [x for x in scalars(osp.dirname(toy_teacher_ckpt)) if 'mIoU' in x]
    assert metrics['mIoU'] == pytest.approx(val[-1]['mIoU'], abs=1e-6)
