"""The shell launchers parse, and pass their arguments to the tools."""
import os
import os.path as osp
import subprocess

import pytest

from conftest import REPO_ROOT

SCRIPTS = ['tools/dist_train.sh', 'tools/dist_test.sh', 'tools/slurm_train.sh']


@pytest.mark.parametrize('script', SCRIPTS)
def test_script_syntax(script):
    proc = subprocess.run(['bash', '-n', osp.join(REPO_ROOT, script)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


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
