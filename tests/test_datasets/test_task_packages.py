"""Each toy data set needs only its own task's package: the segmentation set
imports and reads its data with mmdet not importable, the COCO set with mmseg
not importable. A missing dependency of an installed package is still an
error, not a silently missing data set.

Each case runs in a fresh interpreter whose import system refuses a package
(a meta-path finder), as on a machine where it is not installed.
"""
import os.path as osp
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

# Refuses ``BLOCKED`` and its submodules, as if it were not installed.
BLOCKER = '''
import sys


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == BLOCKED:
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)
        return None


sys.meta_path.insert(0, Blocker())
'''

# Builds the data set from the toy config's val set (under the registered
# name configs use) on a tiny fresh set, reads one sample, and checks that the
# other data set was left out.
USE_DATASET = '''
import os

from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmstructkd.datasets
from mmstructkd.registry import DATASETS
from mmstructkd.toy_data import generate_toy_scenes
from {module} import {name}

assert {other!r} not in mmstructkd.datasets.__all__
generate_toy_scenes(DATA_ROOT, num_train=2, num_val=2, size=32)
os.environ['TOY_DATA_ROOT'] = DATA_ROOT
cfg = Config.fromfile({config!r}).val_dataloader.dataset
cfg.type = 'mmstructkd.{name}'
cfg.pop('metainfo', None)
with DefaultScope.overwrite_default_scope({scope!r}):
    dataset = DATASETS.build(cfg)
assert type(dataset) is {name}
assert len(dataset) == 2
data_sample = dataset[0]['data_samples']
assert {check}
'''
DATASET_CONFIGS = osp.join(REPO_ROOT, 'configs', 'toy', '_base_', 'datasets')

CHECK_NOT_IMPORTED = '''
loaded = sorted(m for m in sys.modules if m.split('.')[0] == BLOCKED)
assert not loaded, loaded
print('OK')
'''


def _run_without(package, body, data_root='unused'):
    script = '\n'.join([
        f'BLOCKED = {package!r}', f'DATA_ROOT = {str(data_root)!r}', BLOCKER,
        body, CHECK_NOT_IMPORTED
    ])
    return subprocess.run([sys.executable, '-c', script],
                          cwd=REPO_ROOT,
                          capture_output=True,
                          text=True,
                          timeout=300)


@pytest.mark.parametrize(
    'blocked, module, name, other, config, scope, check', [
        pytest.param('mmdet', 'mmstructkd.datasets.toy_scene_seg',
                     'ToySceneSegDataset', 'ToySceneCocoDataset',
                     'toyscenes_seg.py', 'mmseg',
                     'data_sample.gt_sem_seg.data.shape == (1, 32, 32)',
                     id='seg-without-mmdet'),
        pytest.param('mmseg', 'mmstructkd.datasets.toy_scene_coco',
                     'ToySceneCocoDataset', 'ToySceneSegDataset',
                     'toyscenes_det.py', 'mmdet',
                     'data_sample.gt_instances.bboxes.shape[1] == 4',
                     id='coco-without-mmseg'),
    ])
def test_each_toy_dataset_needs_only_its_task_package(
        blocked, module, name, other, config, scope, check, tmp_path):
    body = USE_DATASET.format(
        module=module, name=name, other=other, scope=scope, check=check,
        config=osp.join(DATASET_CONFIGS, config))
    proc = _run_without(blocked, body, tmp_path / 'toy')
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith('OK')


def test_a_missing_dependency_of_an_installed_package_is_an_error():
    # mmdet is installed but cannot load its COCO API: say so, rather than
    # leave the COCO data set out.
    proc = _run_without('pycocotools', 'import mmstructkd.datasets')
    assert proc.returncode != 0
    assert "No module named 'pycocotools" in proc.stderr, proc.stderr[-4000:]
    assert 'toy_scene_coco.py' in proc.stderr, proc.stderr[-4000:]
