"""A non-editable build ships configs, tools and model-index.yml.

The wheel is built with pip, as a release would be, from a copy of the
checkout that also holds an editable install's ``mmstructkd/.mim`` links
(the build must leave those alone and write nothing but setuptools' usual
``build/`` and ``*.egg-info`` into the tree). The copy keeps the repository
itself untouched while other jobs use it. The wheel is then installed into a
throw-away directory and ``mmstructkd::`` configs resolve from there, in a
process started outside the repository. An sdist must build the same wheel.
"""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest
import yaml

from conftest import REPO_ROOT

# Top-level entries of a checkout that are not sources of the package.
NOT_SOURCES = {'.git', '.venv', 'data', 'work_dirs', 'build', 'dist',
               '.pytest_cache'}
MIM_ITEMS = ('configs', 'tools', 'model-index.yml')
TOY_CONFIG = 'toy/cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_' \
    'toyscenes.py'


def copy_checkout(dst):
    """Copy the repository's sources to ``dst``; give it the ``.mim`` links
    an editable install makes, and a stale bytecode file to leave out."""

    def ignore(directory, names):
        skip = {n for n in names
                if n == '__pycache__' or n.endswith('.egg-info')}
        if osp.samefile(directory, REPO_ROOT):
            skip |= NOT_SOURCES & set(names)
        if osp.basename(directory) == 'mmstructkd' and '.mim' in names:
            skip.add('.mim')
        return skip

    shutil.copytree(REPO_ROOT, dst, symlinks=True, ignore=ignore)
    mim_dir = osp.join(dst, 'mmstructkd', '.mim')
    os.makedirs(mim_dir)
    for name in MIM_ITEMS:
        os.symlink(osp.join('..', '..', name), osp.join(mim_dir, name))
    os.makedirs(osp.join(dst, 'tools', '__pycache__'))
    with open(osp.join(dst, 'tools', '__pycache__', 'train.cpython.pyc'),
              'wb') as f:
        f.write(b'stale')


def tree(root):
    """Every path under ``root`` (links not followed), relative to it."""
    paths = set()
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            paths.add(osp.relpath(osp.join(directory, name), root))
    return paths


def run(args, cwd, env=None):
    full_env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK='1',
                    PIP_NO_INPUT='1')
    full_env.update(env or {})
    proc = subprocess.run(args, cwd=cwd, env=full_env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


def pip_wheel(source, wheel_dir):
    """``pip wheel SOURCE`` (a directory or an sdist), offline."""
    run([sys.executable, '-m', 'pip', 'wheel', source, '--no-deps',
         '--no-build-isolation', '--no-index', '-w', wheel_dir, '-q'],
        cwd=osp.dirname(wheel_dir))
    wheels = glob.glob(osp.join(wheel_dir, 'mmstructkd-*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def files_under(root, sub):
    """Files under ``root/sub`` (links followed), relative to ``root/sub``,
    bytecode left out."""
    found = set()
    for directory, dirs, files in os.walk(osp.join(root, sub)):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        found |= {osp.relpath(osp.join(directory, f), osp.join(root, sub))
                  for f in files if not f.endswith('.pyc')}
    return found


@pytest.fixture(scope='module')
def build(tmp_path_factory):
    """Build a wheel from a copy of the checkout; return the copy, its
    paths before and after, and the wheel."""
    base = tmp_path_factory.mktemp('wheel_build')
    checkout = str(base / 'checkout')
    copy_checkout(checkout)
    before = tree(checkout)
    wheel = pip_wheel(checkout, str(base / 'wheels'))
    return dict(checkout=checkout, before=before, after=tree(checkout),
                wheel=wheel)


def check_ships_package_data(names, checkout, where):
    """``names``: the files of a wheel. It holds the package's modules and
    ``mmstructkd/.mim`` with the checkout's configs, tools and index."""
    names = set(names)
    modules = {f'mmstructkd/{p}' for p in files_under(checkout, 'mmstructkd')
               if p.endswith('.py') and not p.startswith('.mim')}
    assert modules and modules <= names, (where, sorted(modules - names))
    mim = 'mmstructkd/.mim/'
    shipped = {n[len(mim):] for n in names if n.startswith(mim)}
    for sub in ('configs', 'tools'):
        expected = {f'{sub}/{p}' for p in files_under(checkout, sub)}
        got = {p for p in shipped if p.startswith(sub + '/')}
        assert got == expected, (where, sorted(got ^ expected))
    assert 'model-index.yml' in shipped, where
    # Every metafile of the index and every config the metafiles name.
    for metafile in load_yaml(osp.join(checkout,
                                       'model-index.yml'))['Import']:
        assert metafile in shipped, (where, metafile)
        meta = load_yaml(osp.join(checkout, metafile))
        for model in meta['Models']:
            assert model['Config'] in shipped, (where, model['Config'])
    assert f'configs/{TOY_CONFIG}' in shipped
    assert {'tools/train.py', 'tools/test.py'} <= shipped
    assert not [n for n in names if '__pycache__' in n or
                n.endswith('.pyc')], where


def test_wheel_ships_configs_tools_and_model_index(build):
    with zipfile.ZipFile(build['wheel']) as wheel:
        names = wheel.namelist()
        index = wheel.read('mmstructkd/.mim/model-index.yml')
    check_ships_package_data(names, build['checkout'], 'wheel')
    with open(osp.join(build['checkout'], 'model-index.yml'), 'rb') as f:
        assert index == f.read()


def test_build_leaves_the_checkout_alone(build):
    checkout = build['checkout']
    # The editable install's links are still links to the checkout, not
    # copies that would go stale.
    mim_dir = osp.join(checkout, 'mmstructkd', '.mim')
    assert sorted(os.listdir(mim_dir)) == sorted(MIM_ITEMS)
    for name in MIM_ITEMS:
        link = osp.join(mim_dir, name)
        assert osp.islink(link), name
        assert os.readlink(link) == osp.join('..', '..', name)
    # Nothing new but setuptools' usual build tree and metadata.
    new = build['after'] - build['before']
    top = {p.split(os.sep)[0] for p in new}
    assert top <= {'build', 'mmstructkd.egg-info'}, sorted(new)
    assert build['before'] <= build['after']


def test_installed_wheel_resolves_package_configs(build, tmp_path):
    target = str(tmp_path / 'site')
    run([sys.executable, '-m', 'pip', 'install', '--no-deps', '--no-index',
         '--target', target, '-q', build['wheel']], cwd=str(tmp_path))
    # Only the throw-away install on the path, started outside the repo;
    # an editable install elsewhere in the environment comes after it.
    env = dict(PYTHONPATH=target)
    out = run([sys.executable, '-c', RESOLVE_FROM_INSTALL, TOY_CONFIG],
              cwd=str(tmp_path), env=env)
    report = json.loads(out[out.rindex('REPORT') + len('REPORT'):])
    package_dir = osp.join(target, 'mmstructkd')
    assert osp.samefile(report['module'], osp.join(package_dir,
                                                   '__init__.py'))
    assert osp.samefile(report['installed_path'], package_dir)
    assert osp.samefile(report['dist_location'], target)
    assert osp.samefile(
        report['config_file'],
        osp.join(package_dir, '.mim', 'configs', TOY_CONFIG))
    assert report['model'] == ['SingleTeacherDistill', 'EncoderDecoder',
                               'EncoderDecoder']
    assert report['model_index_configs'] and all(
        report['model_index_configs'].values()), report
    assert report['tools'] == [True, True]


# Runs with only the installed wheel on PYTHONPATH, outside the repository.
RESOLVE_FROM_INSTALL = '''
import importlib.metadata, json, os.path as osp, sys
import yaml
from mmengine.hub import get_config
from mmengine.utils import get_installed_path
import mmstructkd
from mmstructkd.registry import MODELS

cfg = get_config('mmstructkd::' + sys.argv[1])
cfg.model.teacher_ckpt = None
model = MODELS.build(cfg.model)  # teacher/student cfg_path: mmstructkd::toy
mim_dir = osp.join(get_installed_path('mmstructkd'), '.mim')
index = yaml.safe_load(open(osp.join(mim_dir, 'model-index.yml')))
configs = {}
for metafile in index['Import']:
    for m in yaml.safe_load(open(osp.join(mim_dir, metafile)))['Models']:
        configs[m['Config']] = osp.isfile(osp.join(mim_dir, m['Config']))
print('REPORT' + json.dumps(dict(
    module=mmstructkd.__file__,
    installed_path=get_installed_path('mmstructkd'),
    dist_location=str(importlib.metadata.distribution(
        'mmstructkd').locate_file('')),
    config_file=cfg.filename,
    model=[type(m).__name__ for m in (model, model.architecture,
                                      model.teacher)],
    model_index_configs=configs,
    tools=[osp.isfile(osp.join(mim_dir, 'tools', t))
           for t in ('train.py', 'test.py')])))
'''


def test_sdist_builds_the_same_package(build, tmp_path):
    """The sdist carries what setup.py reads and copies (requirements,
    configs, tools, model-index.yml); a wheel built from it ships them."""
    checkout = build['checkout']
    # egg-info and the archive outside the checkout: nothing written there.
    run([sys.executable, 'setup.py', '-q', 'egg_info', '--egg-base',
         str(tmp_path), 'sdist', '-d', str(tmp_path / 'sdist')],
        cwd=checkout)
    (sdist, ) = glob.glob(str(tmp_path / 'sdist' / 'mmstructkd-*.tar.gz'))
    with tarfile.open(sdist) as archive:
        members = {m.name.split('/', 1)[1] for m in archive.getmembers()
                   if '/' in m.name}
    for name in ('setup.py', 'README.md', 'model-index.yml',
                 'requirements/runtime.txt', 'requirements/mminstall.txt',
                 'tools/train.py', f'configs/{TOY_CONFIG}'):
        assert name in members, name
    assert not [m for m in members if m.endswith('.pyc')]
    wheel = pip_wheel(sdist, str(tmp_path / 'wheels'))
    with zipfile.ZipFile(wheel) as archive:
        check_ships_package_data(archive.namelist(), checkout, 'sdist wheel')
