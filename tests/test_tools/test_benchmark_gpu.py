"""tools/benchmark_gpu.sh, by its dry run on the CPU machine: it must print
the set-up (lock file, mmcv built with CUDA ops) and every benchmark with
its device, sizes, precision and output in the one results folder, and run
nothing."""
import os
import os.path as osp
import shlex
import subprocess

import pytest

from conftest import REPO_ROOT
from mmstructkd.benchmarks.config_lists import OVERHEAD_MODEL_ZOO_CONFIGS

SCRIPT = osp.join(REPO_ROOT, 'tools', 'benchmark_gpu.sh')


def dry_run(*args):
    proc = subprocess.run(['bash', SCRIPT, '--dry-run', *args],
                          cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    # Printed commands start with '+ '.
    return [line[2:] for line in proc.stdout.splitlines()
            if line.startswith('+ ')]


def find(commands, *needles):
    found = [c for c in commands if all(n in c for n in needles)]
    assert found, f'no command with {needles} in:\n' + '\n'.join(commands)
    return found


def test_script_syntax():
    proc = subprocess.run(['bash', '-n', SCRIPT], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope='module')
def commands(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('gpu') / 'results')
    return out, dry_run(out)


def test_dry_run_runs_nothing(commands):
    out, _ = commands
    assert not osp.exists(out)


def test_install_uses_the_lock_and_builds_mmcv_with_cuda_ops(commands):
    out, lines = commands
    find(lines, '-m venv --system-site-packages')
    # The lock file, less its CPU torch pin, constrains every install.
    find(lines, "grep -v '^torch==' requirements/lock.txt",
         f'{out}/pins/lock.txt')
    pinned = f'-c {out}/pins/constraints.txt -c {out}/pins/lock.txt'
    for name in ('build', 'mminstall', 'runtime', 'tests'):
        find(lines, 'pip install', pinned, f'requirements/{name}.txt')
    (mmcv, ) = find(lines, 'mmcv==2.1.0')
    for setting in ('MMCV_WITH_OPS=1', 'FORCE_CUDA=1',
                    'TORCH_CUDA_ARCH_LIST=9.0', '--no-build-isolation',
                    pinned):
        assert setting in mmcv
    find(lines, 'pip install', 'setuptools==69.5.1')
    find(lines, 'pip install', '--no-deps -e .')


def _args(command, option, count):
    words = shlex.split(command.split(' > ')[0])
    start = words.index(option) + 1
    return words[start:start + count]


def test_overhead_on_cuda_at_model_zoo_sizes(commands):
    out, lines = commands
    overhead = find(lines, 'tools/benchmark_overhead.py')
    assert len(overhead) == 2
    seg, det = overhead
    assert _args(seg, '--size', 2) == ['512', '1024']
    assert _args(det, '--size', 2) == ['800', '1333']
    precision = ['--amp', '--teacher-precision fp32 bf16 fp16']
    for command, name in ((seg, 'overhead_seg_cuda'),
                          (det, 'overhead_det_cuda')):
        assert '--device cuda' in command
        assert _args(command, '--batch', 1) == ['2']
        assert f'--out {out}/{name}.json' in command
        for option in precision:
            assert option in command
    # Every model-zoo config of the overhead benchmark, in its task's run.
    for config in OVERHEAD_MODEL_ZOO_CONFIGS:
        path = osp.relpath(config, REPO_ROOT)
        assert os.path.exists(config)
        assert path in (det if path.endswith('_coco.py') else seg), path
    assert 'configs/bcd/' in seg and 'configs/bcd/' in det


def test_losses_on_cuda_and_every_output_in_one_folder(commands):
    out, lines = commands
    (losses, ) = find(lines, 'tools/benchmark_losses.py')
    assert '--device cuda' in losses
    assert f'--out {out}/losses_cuda.json' in losses
    for line in lines:
        for word in shlex.split(line.replace(' > ', ' ')):
            if word.endswith(('.json', '.log', '.txt')) and '/' in word \
                    and not word.startswith('requirements/'):
                assert word.startswith(out + '/'), (word, line)


def test_default_folder_and_skip_install():
    lines = dry_run('--skip-install')
    assert not [line for line in lines if 'pip install' in line]
    assert 'mkdir -p benchmarks/results/gpu' in lines
    find(lines, 'tools/benchmark_losses.py',
         '--out benchmarks/results/gpu/losses_cuda.json')


def test_unknown_option_is_an_error():
    proc = subprocess.run(['bash', SCRIPT, '--dry-run', '--fast'],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert 'unknown option --fast' in proc.stderr
