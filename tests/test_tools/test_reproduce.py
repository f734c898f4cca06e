"""tools/reproduce.sh: its dry runs print commands that name existing configs
and tools with the right GPU counts and checkpoints, `list` agrees with the
metafiles, and mistakes stop it with a usage message. Nothing is trained."""
import functools
import importlib.util
import os
import os.path as osp
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml
from mmengine.config import Config

from conftest import REPO_ROOT

SCRIPT = osp.join(REPO_ROOT, 'tools', 'reproduce.sh')
SKD = ('configs/skd/skd_{}_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_'
       'cityscapes-512x512.py')
CWD_SEG = ('configs/cwd/cwd_logits_pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_'
           'cityscapes-512x1024.py')
CWD_GFL = 'configs/cwd/cwd_fpn_gfl-r101_gfl-r50_8xb2-1x_coco.py'
SSIM = 'configs/ssim/ssim_fpn_faster-rcnn-r101_faster-rcnn-r50_8xb2-1x_coco.py'
SKD_VARIANTS = ['pi', 'pi-pa', 'pi-pa-ho', 'pi-pa-fullres']

# Training subcommand -> (default GPU count, configs it trains, in order).
TARGETS = {
    ('skd-cityscapes', ): (4, [SKD.format('pi-pa-ho')]),
    ('skd-cityscapes', 'pi'): (4, [SKD.format('pi')]),
    ('skd-cityscapes', 'all'): (4, [SKD.format(v) for v in SKD_VARIANTS]),
    ('cwd-cityscapes', ): (4, [CWD_SEG]),
    ('cwd-gfl-coco', ): (8, [CWD_GFL]),
    ('ssim-coco', ): (8, [SSIM]),
}


def reproduce(*args, env=None, script=SCRIPT):
    full_env = dict(os.environ, PYTHON=sys.executable)
    full_env.pop('GPUS', None)
    full_env.update(env or {})
    return subprocess.run(['bash', script, *args], cwd=REPO_ROOT,
                          env=full_env, capture_output=True, text=True,
                          timeout=120)


def commands(stdout):
    """The printed commands (comments dropped), each split like a shell."""
    return [shlex.split(line) for line in stdout.splitlines()
            if line.strip() and not line.startswith('#')]


@functools.lru_cache(maxsize=None)
def load_config(config):
    return Config.fromfile(osp.join(REPO_ROOT, config),
                           import_custom_modules=False)


def final_checkpoint(config):
    """The last checkpoint the config's schedule writes."""
    cfg = load_config(config)
    if 'max_iters' in cfg.train_cfg:
        return f'iter_{cfg.train_cfg.max_iters}.pth'
    return f'epoch_{cfg.train_cfg.max_epochs}.pth'


def option(argv, name):
    return argv[argv.index(name) + 1]


def test_script_syntax():
    proc = subprocess.run(['bash', '-n', SCRIPT], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert os.access(SCRIPT, os.X_OK)


def test_list_names_every_target_and_the_metafile_numbers():
    proc = reproduce('list')
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for config in [SKD.format(v) for v in SKD_VARIANTS] + [
            CWD_SEG, CWD_GFL, SSIM]:
        assert config in out
        assert osp.isfile(osp.join(REPO_ROOT, config)), config
    for name in ('skd-cityscapes', 'cwd-cityscapes', 'cwd-gfl-coco',
                 'ssim-coco', 'prepare-cityscapes', 'prepare-coco'):
        assert name in out
    # Every published result in the metafiles appears on its config's line
    # pair (config line, then the "published" line below it).
    lines = out.splitlines()
    checked = 0
    for metafile in ('configs/skd/metafile.yml', 'configs/cwd/metafile.yml'):
        with open(osp.join(REPO_ROOT, metafile)) as f:
            models = yaml.safe_load(f)['Models']
        for model in models:
            config = model['Config']
            if config not in (SKD.format(v) for v in SKD_VARIANTS) and \
                    config != CWD_SEG:
                continue
            row = next(i for i, line in enumerate(lines) if config in line)
            published = lines[row + 1]
            for result in model.get('Results', []):
                if 'mIoU' not in result['Metrics']:
                    continue  # e.g. pi-pa-fullres: nothing published
                value = result['Metrics']['mIoU']
                assert f'-> {value:.2f} mIoU' in published, (config,
                                                            published)
                checked += 1
    assert checked == 4  # SKD pi, pi-pa, pi-pa-ho; CWD logits


# Each target with its own GPU count, and two with another one.
CASES = [(args, None) for args in TARGETS] + [
    (('skd-cityscapes', 'pi'), '2'), (('ssim-coco', ), '2')]


@pytest.mark.parametrize('args,gpus', CASES,
                         ids=['-'.join(a) + (f'-gpus{g}' if g else '')
                              for a, g in CASES])
def test_dry_run_train_test_export(args, gpus):
    default_gpus, configs = TARGETS[args]
    env = {'GPUS': gpus} if gpus else {}
    expected_gpus = gpus or str(default_gpus)
    proc = reproduce('--dry-run', *args, env=env)
    assert proc.returncode == 0, proc.stderr
    # Another GPU count than the published one changes the batch: say so.
    assert ('total batch' in proc.stderr) == (gpus is not None)
    cmds = commands(proc.stdout)
    # Per config: train, test, export, in that order.
    assert len(cmds) == 3 * len(configs), proc.stdout
    with open(osp.join(REPO_ROOT, 'tools', 'train.py')) as f:
        train_src = f.read()
    with open(osp.join(REPO_ROOT, 'tools', 'test.py')) as f:
        test_src = f.read()
    for i, config in enumerate(configs):
        train, test, export = cmds[3 * i:3 * i + 3]
        ckpt = final_checkpoint(config)
        # dist_train.sh CONFIG GPUS [train.py options]
        assert train[:4] == ['bash', 'tools/dist_train.sh', config,
                             expected_gpus], train
        work_dir = option(train, '--work-dir')
        assert '--work-dir' in train_src
        # dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]
        assert test[:5] == ['bash', 'tools/dist_test.sh', config,
                            f'{work_dir}/{ckpt}', expected_gpus], test
        for name in ('--work-dir', '--out'):
            option(test, name)
            assert f"'{name}'" in test_src
        # export_student.py CKPT OUT_DIR --config CONFIG
        assert export[0] == sys.executable
        assert export[1:4] == ['tools/model_converters/export_student.py',
                               f'{work_dir}/{ckpt}', f'{work_dir}/student']
        assert option(export, '--config') == config
        for argv in (train, test, export):
            for token in argv:
                if token.endswith(('.py', '.sh')) and \
                        not token.startswith(work_dir):
                    assert osp.isfile(osp.join(REPO_ROOT, token)), token
    # The teacher's model-zoo URL is named (downloaded on first use).
    for config in configs:
        cfg = load_config(config)
        assert cfg.model.teacher_ckpt.startswith('https://download.openmmlab')
        assert cfg.model.teacher_ckpt in proc.stdout


def test_dry_run_passes_train_options():
    proc = reproduce('--dry-run', 'cwd-gfl-coco', '--', '--amp',
                     '--cfg-options', 'auto_scale_lr.enable=True')
    assert proc.returncode == 0, proc.stderr
    train, test, _ = commands(proc.stdout)
    assert train[-3:] == ['--amp', '--cfg-options',
                          'auto_scale_lr.enable=True']
    assert '--amp' not in test


def test_dry_run_prepare_cityscapes_uses_mmseg_converter():
    proc = reproduce('--dry-run', 'prepare-cityscapes', env={'NPROC': '3'})
    assert proc.returncode == 0, proc.stderr
    (cmd, ) = commands(proc.stdout)
    assert cmd[0] == sys.executable
    converter = cmd[1]
    mmseg_dir = osp.dirname(importlib.util.find_spec('mmseg').origin)
    assert converter == osp.join(mmseg_dir, '.mim', 'tools',
                                 'dataset_converters', 'cityscapes.py')
    assert osp.isfile(converter)
    assert cmd[2:] == ['data/cityscapes', '--nproc', '3']
    for sub in ('leftImg8bit', 'gtFine', 'cityscapesscripts'):
        assert sub in proc.stdout


def test_dry_run_prepare_coco_gets_the_layout_mmdet_expects():
    proc = reproduce('--dry-run', 'prepare-coco')
    assert proc.returncode == 0, proc.stderr
    cmds = commands(proc.stdout)
    fetched = [c[-1] for c in cmds if c[0] == 'curl']
    assert sorted(osp.basename(u) for u in fetched) == [
        'annotations_trainval2017.zip', 'train2017.zip', 'val2017.zip'
    ]
    unzips = [c for c in cmds if c[0] == 'unzip']
    assert len(unzips) == 3
    assert all(option(c, '-d') == 'data/coco' for c in unzips)
    # mmdet's COCO config reads exactly these paths.
    dataset = load_config(SSIM).train_dataloader.dataset
    assert dataset.data_root.rstrip('/') == 'data/coco'
    assert dataset.data_prefix.img == 'train2017/'
    assert dataset.ann_file == 'annotations/instances_train2017.json'


@pytest.mark.parametrize('args', [
    ('bogus', ), (), ('skd-cityscapes', 'pi-ho'), ('list', 'extra'),
    ('cwd-gfl-coco', 'extra')
])
def test_mistakes_exit_non_zero_with_usage(args):
    proc = reproduce('--dry-run', *args)
    assert proc.returncode != 0
    assert proc.stdout == ''
    assert 'Usage: tools/reproduce.sh' in proc.stderr or \
        'one of: pi pi-pa pi-pa-ho' in proc.stderr, proc.stderr
    if args:
        assert args[-1] in proc.stderr


def test_bad_gpu_count_exits_non_zero():
    proc = reproduce('--dry-run', 'ssim-coco', env={'GPUS': 'eight'})
    assert proc.returncode != 0
    assert 'GPUS must be a positive integer' in proc.stderr


@pytest.mark.parametrize('args,message', [
    (('cwd-gfl-coco', ), 'data/coco/train2017 is missing: run '
     'tools/reproduce.sh prepare-coco'),
    (('skd-cityscapes', ), 'data/cityscapes/leftImg8bit is missing: run '
     'tools/reproduce.sh prepare-cityscapes'),
    (('prepare-cityscapes', ), 'data/cityscapes/leftImg8bit is missing'),
])
def test_real_run_without_data_stops_before_launching(tmp_path, args,
                                                      message):
    # A copy of the script in a tree with the configs but no data/, so the
    # run cannot find (and start training on) a real data set.
    (tmp_path / 'tools').mkdir()
    script = tmp_path / 'tools' / 'reproduce.sh'
    shutil.copy(SCRIPT, script)
    (tmp_path / 'configs').symlink_to(osp.join(REPO_ROOT, 'configs'))
    proc = reproduce(*args, script=str(script))
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert 'dist_train.sh' not in proc.stdout + proc.stderr
    assert not (tmp_path / 'work_dirs').exists()


def test_reproduced_configs_are_in_the_one_step_tests():
    """The configs this script trains are among those the model-zoo tests
    build and step once with finite losses (test_model_zoo_*configs.py)."""
    stepped = set()
    for name, attr in (('test_model_zoo_configs', 'SEG_CONFIGS'),
                       ('test_model_zoo_det_configs', 'DET_CONFIGS')):
        path = osp.join(REPO_ROOT, 'tests', 'test_configs', f'{name}.py')
        # A private module name: pytest may import the same file itself.
        spec = importlib.util.spec_from_file_location(f'_reproduce_{name}',
                                                      path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        stepped |= {osp.relpath(p, REPO_ROOT) for p in getattr(module, attr)}
    for _, configs in TARGETS.values():
        for config in configs:
            assert config in stepped, config
