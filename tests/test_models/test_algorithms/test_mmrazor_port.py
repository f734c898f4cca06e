"""mmrazor configs in their published form (tests/data/mmrazor_configs/)
run here after the documented port (docs/port_mmrazor.md): the scope prefix
``mmrazor`` -> ``mmstructkd`` and ``custom_imports``, nothing else.

Each ported config is built and trained for one step by mmengine's Runner,
with random weights, on the tiny toy data set; the refusals of mmrazor's
``SingleTeacherDistill`` arguments are checked at build.
"""
import glob
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner

import mmstructkd  # noqa: F401
from mmstructkd.models.algorithms import FpnTeacherDistill

from conftest import REPO_ROOT

MMRAZOR_CONFIGS = osp.join(REPO_ROOT, 'tests', 'data', 'mmrazor_configs')
FPN = 'cwd_fpn_retina_toy_fpn-teacher.py'
FPN_VIS = 'cwd_fpn_retina_toy_fpn-teacher_visualization.py'
ARGUMENTS = 'cwd_logits_pspnet_toy_mmrazor-arguments.py'


def port_from_mmrazor(text):
    """The port of docs/port_mmrazor.md."""
    text = text.replace("_scope_='mmrazor'", "_scope_='mmstructkd'")
    text = text.replace("type='mmrazor.", "type='mmstructkd.")
    return ("custom_imports = dict(imports=['mmstructkd'], "
            "allow_failed_imports=False)\n" + text)


@pytest.fixture
def ported(tmp_path, toy_env, monkeypatch):
    """The ported configs, in a copy of the tree layout (their ``_base_``
    paths are relative to the repository), and a loader of them."""
    for key, value in toy_env.items():
        monkeypatch.setenv(key, value)
    os.symlink(osp.join(REPO_ROOT, 'configs'), tmp_path / 'configs')
    folder = tmp_path / 'tests' / 'data' / 'mmrazor_configs'
    folder.mkdir(parents=True)
    for path in glob.glob(osp.join(MMRAZOR_CONFIGS, '*.py')):
        with open(path) as f:
            text = f.read()
        assert "'mmrazor" in text, f'{path} is not in mmrazor\'s form'
        (folder / osp.basename(path)).write_text(port_from_mmrazor(text))
    return lambda name: Config.fromfile(str(folder / name))


def one_step_runner(cfg, work_dir):
    """A Runner that trains one iteration and neither validates nor saves
    (run options, not part of the port)."""
    name = osp.basename(work_dir)
    cfg.work_dir = work_dir
    cfg.train_cfg.max_iters = 1
    cfg.train_cfg.val_begin = 100  # no validation
    cfg.default_hooks.checkpoint.interval = 100
    cfg.default_hooks.logger.interval = 1
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.param_scheduler[0].end = 1
    # Unique names: in-process Runners must not share a visualizer.
    cfg.experiment_name = name
    cfg.visualizer.name = f'visualizer_{name}'
    return Runner.from_cfg(cfg)


def train_one_step(runner):
    logged = {}
    original = runner.model.train_step

    def train_step(*args, **kwargs):
        log_vars = original(*args, **kwargs)
        logged.update(log_vars)
        return log_vars

    runner.model.train_step = train_step
    runner.train()
    return logged


def test_fpn_teacher_distill_runs_backbone_and_neck_only(ported, tmp_path):
    runner = one_step_runner(ported(FPN), str(tmp_path / 'fpn'))
    model = runner.model
    assert type(model) is FpnTeacherDistill
    assert model.teacher_forward_mode == 'feat'
    head_calls = []
    model.teacher.bbox_head.retina_cls.register_forward_hook(
        lambda *args: head_calls.append(1))
    logged = train_one_step(runner)
    assert head_calls == []
    for i in range(5):
        assert torch.isfinite(logged[f'distill.loss_cwd_fpn{i}'])
    assert any(k.startswith('student.') for k in logged)


def test_fpn_teacher_distill_refuses_head_recorders(ported):
    cfg = ported(FPN)
    cfg.model.distiller.teacher_recorders.fpn.source = 'bbox_head.retina_cls'
    with DefaultScope.overwrite_default_scope(cfg.default_scope), \
            pytest.raises(ValueError, match=r"outside its backbone and neck"):
        MODELS.build(cfg.model)
    cfg = ported(FPN)
    cfg.model.teacher_forward_mode = 'tensor'
    with DefaultScope.overwrite_default_scope(cfg.default_scope), \
            pytest.raises(ValueError, match='FpnTeacherDistill runs'):
        MODELS.build(cfg.model)


def test_calculate_student_loss_false_keeps_only_distill_losses(
        ported, tmp_path):
    runner = one_step_runner(ported(ARGUMENTS), str(tmp_path / 'args'))
    student_before = {k: v.clone() for k, v in
                      runner.model.student.state_dict().items()}
    logged = train_one_step(runner)
    assert not any(k.startswith('student.') for k in logged), logged
    assert torch.isfinite(logged['distill.loss_cwd'])
    # The distillation loss alone trained the student.
    after = runner.model.student.state_dict()
    key = 'decode_head.conv_seg.weight'
    assert not torch.equal(student_before[key], after[key])


@pytest.mark.parametrize('argument, value, match', [
    ('teacher_trainable', True, 'teacher is frozen by design'),
    ('teacher_norm_eval', False, 'always runs in eval'),
    ('student_trainable', False, 'the student is what'),
    ('calculate_student_loss', 'no', 'must be True or False'),
    ('teacher_module_inplace', False, 'unexpected keyword argument'),
])
def test_mmrazor_arguments_refused_at_build(ported, argument, value, match):
    cfg = ported(ARGUMENTS)
    cfg.model[argument] = value
    with DefaultScope.overwrite_default_scope(cfg.default_scope), \
            pytest.raises((TypeError, ValueError), match=match):
        MODELS.build(cfg.model)


def test_razor_visualization_hook_writes_feature_maps(ported, tmp_path):
    runner = one_step_runner(ported(FPN_VIS), str(tmp_path / 'vis'))
    hook, = [h for h in runner.hooks
             if type(h).__name__ == 'RazorVisualizationHook']
    runner.train()
    out_dir = osp.join(runner.work_dir, runner.timestamp, 'retina_vis')
    # Before training and at the end of the (iteration-based) loop.
    names = sorted(os.listdir(out_dir))
    assert names == sorted(
        f'{stage}_data_idx_0_{level}_0.png'
        for stage in ('before_run', 'iter_1')
        for level in ('p3', 'p4', 'p5', 'p6'))
    assert hook.recorders['neck'].source == 'architecture.neck'
