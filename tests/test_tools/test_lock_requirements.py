"""requirements/lock.txt: the environment the suite runs in is the locked one,
and the check names every difference."""
import importlib.util
import os.path as osp

import pytest

from conftest import REPO_ROOT

LOCK = osp.join(REPO_ROOT, 'requirements', 'lock.txt')


def load_tool():
    path = osp.join(REPO_ROOT, 'tools', 'lock_requirements.py')
    spec = importlib.util.spec_from_file_location('lock_requirements', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_the_suite_runs_in_the_locked_environment(capsys):
    tool = load_tool()
    assert tool.check(LOCK) == 0, capsys.readouterr().err
    pins = tool.read_lock(LOCK)
    # The stack of shared/STACK.md is part of it.
    for name, version in (('torch', '2.13.0'), ('mmengine', '0.10.7'),
                          ('mmcv', '2.1.0'), ('mmsegmentation', '1.2.2'),
                          ('mmdet', '3.3.0')):
        assert pins[name].split('+')[0] == version, (name, pins[name])


def test_check_names_each_difference(tmp_path, capsys):
    tool = load_tool()
    lock = str(tmp_path / 'lock.txt')
    tool.write(lock)
    assert tool.check(lock) == 0
    pins = tool.read_lock(lock)
    pins['numpy'] = '0.0.1'
    del pins['pyyaml']
    pins['not-a-real-package'] = '1.0'
    with open(lock, 'w') as f:
        f.writelines(f'{name}=={version}\n' for name, version in pins.items())
    capsys.readouterr()
    assert tool.check(lock) == 1
    err = capsys.readouterr().err
    assert 'numpy: locked 0.0.1, installed' in err
    assert 'pyyaml: ' in err and 'not in the lock' in err
    assert 'not-a-real-package: locked 1.0, not installed' in err
    assert 'make lock' in err


def test_a_malformed_lock_line_is_refused(tmp_path):
    tool = load_tool()
    lock = tmp_path / 'lock.txt'
    lock.write_text('numpy>=1.24\n')
    with pytest.raises(ValueError, match=r'lock.txt:1: expected NAME==VERSION'):
        tool.read_lock(str(lock))
