"""Packaging for mmstructkd.

As in OpenMMLab packages, ``configs/``, ``tools/`` and ``model-index.yml``
are shipped inside the package as ``mmstructkd/.mim/``, so ``mmstructkd::``
config paths and ``mim`` work from a non-editable install too: a wheel gets
copies (made in the build tree only), an editable install links to the
checkout.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

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


# What ``mmstructkd/.mim`` holds, as in OpenMMLab packages: ``mmstructkd::``
# config paths, ``mim train/test`` and ``mim search`` read them from there.
MIM_ITEMS = ('configs', 'tools', 'model-index.yml')
MIM_IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc', '*.pyo')


def is_editable_install():
    # 'develop': legacy ``pip install -e`` (setup.py develop);
    # 'editable_wheel': PEP 660 editable installs.
    return 'develop' in sys.argv or 'editable_wheel' in sys.argv


def link_mim_items():
    """Editable install: link ``mmstructkd/.mim/*`` to the checkout.

    The repository stays the single source of truth while developing: a
    config edited under ``configs/`` is what ``mmstructkd::`` resolves to.
    """
    mim_dir = osp.join(HERE, 'mmstructkd', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_ITEMS:
        dst = osp.join(mim_dir, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        os.symlink(osp.relpath(osp.join(HERE, name), mim_dir), dst)


def copy_mim_items(package_dir):
    """Copy configs, tools and model-index.yml into ``package_dir/.mim``.

    Used on the build tree (``build/lib/mmstructkd``), never on the source
    tree: writing copies into the checkout would replace an editable
    install's links with copies that go stale as the configs change.
    """
    mim_dir = osp.join(package_dir, '.mim')
    if osp.isdir(mim_dir):  # a previous build's copy
        shutil.rmtree(mim_dir)
    os.makedirs(mim_dir)
    for name in MIM_ITEMS:
        src = osp.join(HERE, name)
        dst = osp.join(mim_dir, name)
        if osp.isdir(src):
            shutil.copytree(src, dst, ignore=MIM_IGNORE)
        else:
            shutil.copyfile(src, dst)


class BuildPyWithMim(build_py):
    """``build_py`` that also puts ``.mim`` into the built package."""

    def run(self):
        super().run()
        # An editable wheel maps the package to the checkout, links included.
        if not getattr(self, 'editable_mode', False):
            copy_mim_items(osp.join(self.build_lib, 'mmstructkd'))


if __name__ == '__main__':
    if is_editable_install():
        link_mim_items()
    setup(
        name='mmstructkd',
        version=get_version(),
        description='Structured knowledge distillation for dense prediction, '
        'as an OpenMMLab plugin',
        long_description=open(osp.join(HERE, 'README.md')).read()
        if osp.exists(osp.join(HERE, 'README.md')) else '',
        long_description_content_type='text/markdown',
        packages=find_packages(exclude=('configs', 'tools', 'tests')),
        cmdclass={'build_py': BuildPyWithMim},
        python_requires='>=3.8',
        license='Apache License 2.0',
        install_requires=read_requirements('runtime.txt'),
        extras_require={
            'tests': read_requirements('tests.txt'),
            'mim': read_requirements('mminstall.txt'),
        },
        zip_safe=False,
    )
