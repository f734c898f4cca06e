"""Nothing from a checkpoint is ever executed.

A real distillation checkpoint (the toy CWD config trained one iteration)
is poisoned: its ``meta['cfg']`` (what mmengine's Runner stores and the old
``export_student.py`` ran with ``Config.fromstring``) and ``meta['config']``
(what mmengine's ``Runner.resume`` runs) start with code that creates a
marker file. Every tool that reads the checkpoint then runs on it and the
marker must not exist. Each case has a control showing that the same text,
executed the way mmengine would, does create the marker, so a regression
cannot pass unnoticed.
"""
import glob
import importlib.util
import os.path as osp
import shlex

import pytest
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import CheckpointLoader

import mmstructkd  # noqa: F401  (weights-only loading of Runner checkpoints)
from conftest import (REPO_ROOT, last_checkpoint, quick_train_options,
                      run_tool, toy_config)
from mmstructkd.utils.config_data import parse_config_data

CWD = 'cwd_logits_pspnet-r34-thin32_pspnet-r18-thin16_1xb8-2k_toyscenes.py'


def payload(marker) -> str:
    """The reported exploit: a config line that creates ``marker``."""
    command = 'touch ' + shlex.quote(str(marker))
    return f"_x = __import__('os').system({command!r})\n"


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def data_text(data: dict) -> str:
    """Config text that is pure data (``repr`` of each value)."""
    return ''.join(f'{k} = {v!r}\n' for k, v in data.items())


def poison(clean_ckpt, out, cfg=None, config=None):
    """A copy of ``clean_ckpt`` with ``meta['cfg']``/``meta['config']``
    replaced."""
    checkpoint = load(clean_ckpt)
    if cfg is not None:
        checkpoint['meta']['cfg'] = cfg
    if config is not None:
        checkpoint['meta']['config'] = config
    torch.save(checkpoint, str(out))
    return str(out)


@pytest.fixture(scope='module')
def distill_ckpt(tmp_path_factory, toy_env, toy_teacher_ckpt):
    """The toy CWD distillation config trained one iteration."""
    work_dir = str(tmp_path_factory.mktemp('security_distill'))
    run_tool(['tools/train.py', toy_config(CWD), '--work-dir', work_dir,
              '--cfg-options', f'model.teacher_ckpt={toy_teacher_ckpt}'] +
             quick_train_options(iters=1, batch=2), env=toy_env)
    return osp.join(work_dir, osp.basename(last_checkpoint(work_dir)))


@pytest.fixture
def marker(tmp_path):
    return tmp_path / 'MARKER'


@pytest.fixture
def poisoned_ckpt(distill_ckpt, marker, tmp_path):
    """meta['cfg'] and meta['config']: the payload, then the real config."""
    text = payload(marker) + load(distill_ckpt)['meta']['cfg']
    return poison(distill_ckpt, tmp_path / 'poisoned.pth', cfg=text,
                  config=text)


@pytest.fixture(scope='module')
def tool():
    path = osp.join(REPO_ROOT, 'tools', 'model_converters',
                    'export_student.py')
    spec = importlib.util.spec_from_file_location('export_student', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_control_mmengine_executes_the_poisoned_config(poisoned_ckpt,
                                                       marker):
    text = load(poisoned_ckpt)['meta']['cfg']
    assert not marker.exists()
    Config.fromstring(text, file_format='.py')
    assert marker.exists()


# ------------------------------------------------------------ export ---
def test_export_without_config_refuses_the_poisoned_checkpoint(
        tool, poisoned_ckpt, marker, tmp_path):
    out_dir = tmp_path / 'export'
    with pytest.raises(SystemExit) as error:
        tool.main([poisoned_ckpt, str(out_dir)])
    message = str(error.value)
    assert '--config' in message and 'not plain data' in message, message
    assert not marker.exists()
    assert not out_dir.exists()


def test_export_with_config_ignores_the_stored_config(
        tool, poisoned_ckpt, distill_ckpt, marker, tmp_path):
    ckpt_out, cfg_out = tool.export_student(
        poisoned_ckpt, str(tmp_path / 'export'), toy_config(CWD))
    assert not marker.exists()
    exported = load(ckpt_out)['state_dict']
    original = load(distill_ckpt)['state_dict']
    assert exported and set(exported) == {
        k[len('architecture.'):] for k in original
        if k.startswith('architecture.')}
    for key, value in exported.items():
        assert torch.equal(value, original['architecture.' + key]), key
    assert Config.fromfile(cfg_out).model.type == 'EncoderDecoder'


def test_export_without_config_reads_a_clean_checkpoint_as_data(
        tool, distill_ckpt, tmp_path, monkeypatch):
    # The config from --config (trusted) and the one read from the
    # checkpoint give the same student.
    _, trusted_cfg = tool.export_student(
        distill_ckpt, str(tmp_path / 'trusted'), toy_config(CWD))
    # Without --config nothing of the checkpoint is executed: no
    # fromstring, and fromfile only for the package's own student config.
    config_roots = [
        osp.realpath(osp.join(REPO_ROOT, 'configs')),
        osp.realpath(osp.join(osp.dirname(mmstructkd.__file__), '.mim',
                              'configs'))
    ]
    loaded = []
    fromfile = Config.fromfile

    def recording_fromfile(filename, *args, **kwargs):
        loaded.append(osp.realpath(str(filename)))
        return fromfile(filename, *args, **kwargs)

    def refuse(*args, **kwargs):
        raise AssertionError('Config.fromstring called by the export')

    monkeypatch.setattr(Config, 'fromfile', staticmethod(recording_fromfile))
    monkeypatch.setattr(Config, 'fromstring', staticmethod(refuse))
    ckpt_out, cfg_out = tool.export_student(distill_ckpt,
                                            str(tmp_path / 'from_ckpt'))
    monkeypatch.undo()
    assert loaded, 'the student config (cfg_path) was not loaded'
    for path in loaded:
        assert any(path.startswith(root + osp.sep) for root in config_roots)
    assert load(ckpt_out)['state_dict']
    from_ckpt = Config.fromfile(cfg_out)
    assert from_ckpt.model == Config.fromfile(trusted_cfg).model
    assert from_ckpt.default_scope == 'mmseg'
    assert 'custom_imports' not in from_ckpt


# Every toy distillation config and one model-zoo config per task: the
# text a Runner stores for it exports without --config (read as data, and
# passing every check); the student config equals the one from executing it.
STORED_CONFIGS = sorted(
    osp.relpath(path, REPO_ROOT) for path in glob.glob(
        osp.join(REPO_ROOT, 'configs', 'toy', '*_*_*.py'))
    if osp.basename(path).split('_')[0] in ('cwd', 'skd', 'bcd', 'ssim',
                                            'cwd-bcd')) + [
    'configs/cwd/cwd_fpn_retinanet-r101_retinanet-r50_8xb2-1x_coco.py',
    'configs/skd/skd_pi_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-'
    '512x512.py'
]


@pytest.mark.parametrize('config', STORED_CONFIGS)
def test_every_distillation_config_exports_from_its_stored_text(
        tool, config):
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    from_data = tool.config_from_checkpoint_meta({'cfg': cfg.pretty_text},
                                                 config)
    student = tool.plain_student_config(from_data)
    tool.check_untrusted_student_config(student, student.pretty_text, config)
    assert student.to_dict() == tool.plain_student_config(cfg).to_dict()


def injections(marker, tmp_path):
    """``{case: (edit of the config data, control)}``: each edit is plain
    data that would still run code (a student config file to load; in the
    exported student.py an import, a ``_base_``, a scoped type whose package
    mmengine's registry imports, or a key that ``pretty_text`` writes out as
    code); each control runs what mmengine would."""
    evil_py = tmp_path / 'evil_config.py'
    evil_py.write_text(payload(marker))
    module = f'evil_module_{tmp_path.name.replace("-", "_")}'
    (tmp_path / f'{module}.py').write_text(
        f'import pathlib\npathlib.Path({str(marker)!r}).touch()\n')
    key = ("x': __import__('os').system(" +
           repr('touch ' + shlex.quote(str(marker))) + "), 'y")

    def cfg_path(data):
        data['model']['architecture'] = dict(cfg_path=str(evil_py))

    def custom_imports(data):
        data['custom_imports'] = dict(imports=[module])

    def base(data):
        data['_base_'] = [str(evil_py)]

    def quoted_key(data):
        data['train_cfg'][key] = 1

    def scoped_type(data):
        data['visualizer']['type'] = f'{module}.Visualizer'

    def build_scoped_type():
        from mmengine.registry import VISUALIZERS
        VISUALIZERS.get(f'{module}.Visualizer')

    def load_text(text):
        return lambda: Config.fromstring(text, file_format='.py')

    return dict(
        cfg_path=(cfg_path, lambda: Config.fromfile(str(evil_py))),
        custom_imports=(custom_imports, load_text(
            f'custom_imports = dict(imports=[{module!r}])\n')),
        _base_=(base, load_text(f'_base_ = [{str(evil_py)!r}]\n')),
        scoped_type=(scoped_type, build_scoped_type),
        quoted_key=(quoted_key, load_text(
            Config(dict(train_cfg={key: 1})).pretty_text)))


@pytest.mark.parametrize('case', ['cfg_path', 'custom_imports', '_base_',
                                  'scoped_type', 'quoted_key'])
def test_export_refuses_data_that_would_run_code_later(
        case, tool, distill_ckpt, marker, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    edit, control = injections(marker, tmp_path)[case]
    data = parse_config_data(load(distill_ckpt)['meta']['cfg'])
    edit(data)
    ckpt = poison(distill_ckpt, tmp_path / 'poisoned.pth',
                  cfg=data_text(data))
    with pytest.raises(SystemExit) as error:
        tool.main([ckpt, str(tmp_path / 'export')])
    assert '--config' in str(error.value), error.value
    assert not marker.exists()
    assert not (tmp_path / 'export').exists()
    control()
    assert marker.exists()


# ----------------------------------------------- test.py, visualizer ---
def test_tools_test_does_not_execute_the_checkpoint(
        poisoned_ckpt, marker, tmp_path, toy_env, toy_teacher_ckpt):
    out = tmp_path / 'metrics.json'
    run_tool(['tools/test.py', toy_config(CWD), poisoned_ckpt,
              '--work-dir', str(tmp_path / 'test'), '--out', str(out),
              '--cfg-options', f'model.teacher_ckpt={toy_teacher_ckpt}',
              'test_dataloader.batch_size=4'], env=toy_env)
    assert out.exists()
    assert not marker.exists()


def test_visualize_distill_does_not_execute_the_checkpoint(
        poisoned_ckpt, marker, tmp_path, toy_env, toy_data_root,
        toy_teacher_ckpt):
    out_dir = tmp_path / 'vis'
    run_tool(['tools/visualize_distill.py', toy_config(CWD), poisoned_ckpt,
              osp.join(toy_data_root, 'img_dir', 'val', 'val_00000.png'),
              '--out-dir', str(out_dir), '--teacher-ckpt', toy_teacher_ckpt],
             env=toy_env)
    assert list(out_dir.glob('*.png'))
    assert not marker.exists()


# ------------------------------------------------------------ resume ---
def test_checkpoint_loader_keeps_only_gpu_ids_of_meta_config(
        distill_ckpt, poisoned_ckpt, marker, tmp_path):
    meta = CheckpointLoader.load_checkpoint(poisoned_ckpt)['meta']
    assert 'config' not in meta and meta['cfg'].startswith('_x = ')
    data_only = poison(distill_ckpt, tmp_path / 'gpus.pth',
                       config=payload(marker) + 'gpu_ids = [0, 1]\n')
    assert 'config' not in CheckpointLoader.load_checkpoint(data_only)['meta']
    legacy = poison(distill_ckpt, tmp_path / 'legacy.pth',
                    config="gpu_ids = [0, 1]\nmodel = dict(type='X')\n")
    meta = CheckpointLoader.load_checkpoint(legacy)['meta']
    assert meta['config'] == 'gpu_ids = [0, 1]\n'
    assert not marker.exists()


def test_resume_does_not_execute_the_checkpoint(
        poisoned_ckpt, marker, tmp_path, toy_env, toy_teacher_ckpt):
    work_dir = str(tmp_path / 'resumed')
    run_tool(['tools/train.py', toy_config(CWD), '--work-dir', work_dir,
              '--resume', poisoned_ckpt, '--cfg-options',
              f'model.teacher_ckpt={toy_teacher_ckpt}'] +
             quick_train_options(iters=2, batch=2), env=toy_env)
    assert load(osp.join(work_dir, 'iter_2.pth'))['meta']['iter'] == 2
    assert not marker.exists()
