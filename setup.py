"""Packaging for mmstructkd.

The configs under ``configs/`` are copied into ``mmstructkd/.mim/configs`` at
build time (as OpenMMLab packages do), so ``mmstructkd::`` config paths and
``mim`` work from a non-editable install too.
"""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements(name):
    path = osp.join(HERE, 'requirements', name)
    with open(path) as f:
        return [
            line.strip() for line in f
            if line.strip() and not line.startswith('#')
        ]


def get_version():
    scope = {}
    with open(osp.join(HERE, 'mmstructkd', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def add_mim_extension():
    """Copy configs (and model-index) into ``mmstructkd/.mim``.

    An editable install (``pip install -e``) links instead of copying, so the
    repository stays the single source of truth while developing.
    """
    mim_dir = osp.join(HERE, 'mmstructkd', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    editable = 'develop' in os.sys.argv or 'editable_wheel' in os.sys.argv
    for name in ('configs', 'tools', 'model-index.yml'):
        src = osp.join(HERE, name)
        dst = osp.join(mim_dir, name)
        if not osp.exists(src) and not editable:
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if editable:
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmstructkd',
        version=get_version(),
        description='Structured knowledge distillation for dense prediction, '
        'as an OpenMMLab plugin',
        long_description=open(osp.join(HERE, 'README.md')).read()
        if osp.exists(osp.join(HERE, 'README.md')) else '',
        long_description_content_type='text/markdown',
        packages=find_packages(exclude=('configs', 'tools', 'tests')),
        include_package_data=True,
        package_data={'mmstructkd': ['.mim/**/*', '.mim/*']},
        python_requires='>=3.8',
        license='Apache License 2.0',
        install_requires=read_requirements('runtime.txt'),
        extras_require={
            'tests': read_requirements('tests.txt'),
            'mim': read_requirements('mminstall.txt'),
        },
        zip_safe=False,
    )
