"""MultiTeacherDistill end to end with the toy config (PSPNet and DeepLabV3
teachers, PSPNet student): the val loop evaluates every teacher once,
TeacherCheckHook checks each, --resume is exact, the export holds the
student only, and two processes (gloo) stay identical."""
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mmstructkd  # noqa: F401
from conftest import REPO_ROOT, run_tool, scalars, toy_config
from mmstructkd.engine.hooks import TeacherCheckError
from mmstructkd.engine.runner import teacher_evaluation
from test_resume import assert_same, load

MULTI = ('cwd_logits_pspnet-r34-thin32-and-deeplabv3-r34-thin32_'
         'pspnet-r18-thin16_1xb8-2k_toyscenes.py')
NAMES = ('pspnet', 'deeplabv3')
LOSSES = ('distill.loss_cwd_pspnet', 'distill.loss_cwd_deeplabv3')


@pytest.fixture
def teacher_ckpts(toy_teacher_ckpt, toy_deeplabv3_teacher_ckpt):
    return dict(pspnet=toy_teacher_ckpt, deeplabv3=toy_deeplabv3_teacher_ckpt)


def ckpt_options(ckpts):
    return [f'model.teachers.{name}.ckpt={path}'
            for name, path in ckpts.items()]


def make_runner(work_dir, ckpts, hooks, iters, val_interval, monkeypatch,
                toy_env, **teacher_options):
    for key, value in toy_env.items():
        monkeypatch.setenv(key, value)
    cfg = Config.fromfile(toy_config(MULTI))
    cfg.work_dir = work_dir
    for name, path in ckpts.items():
        cfg.model.teachers[name].ckpt = path
    for name, options in teacher_options.items():
        cfg.model.teachers[name].update(options)
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = val_interval
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = 1
    cfg.train_dataloader.batch_size = 2
    cfg.val_dataloader.batch_size = 2
    cfg.param_scheduler[0].end = iters
    cfg.custom_hooks = hooks
    cfg.experiment_name = osp.basename(work_dir)
    cfg.visualizer.name = f'visualizer_{osp.basename(work_dir)}'
    return Runner.from_cfg(cfg)


def test_val_loop_and_teacher_check_cover_every_teacher(
        tmp_path, teacher_ckpts, monkeypatch, toy_env):
    runner = make_runner(
        str(tmp_path / 'val'), teacher_ckpts,
        [dict(type='mmstructkd.TeacherCheckHook', metric='mIoU',
              min_metric=0.0, max_batches=1)],
        iters=2, val_interval=1, monkeypatch=monkeypatch, toy_env=toy_env)
    evaluated = []
    original = teacher_evaluation.evaluate_teacher

    def counting(teacher, *args, **kwargs):
        names = [n for n, t in runner.model.teachers.items() if t is teacher]
        evaluated.append(names[0])
        return original(teacher, *args, **kwargs)

    monkeypatch.setattr(teacher_evaluation, 'evaluate_teacher', counting)
    runner.train()
    assert runner.iter == 2
    # Two validations; every teacher evaluated once (the first), its
    # metrics next to the student's in both.
    assert sorted(evaluated) == sorted(NAMES)
    val = [x for x in scalars(runner.work_dir) if 'mIoU' in x]
    assert len(val) == 2
    for name in NAMES:
        assert val[0][f'teacher.{name}.mIoU'] == val[1][f'teacher.{name}.mIoU']
    assert not any(k.startswith('teacher.mIoU') for k in val[0])
    train = [x for x in scalars(runner.work_dir) if LOSSES[0] in x]
    assert len(train) == 2 and all(x[k] > 0 for x in train for k in LOSSES)
    # The check evaluated each teacher.
    hook = [h for h in runner.hooks
            if type(h).__name__ == 'TeacherCheckHook'][0]
    assert set(hook.metrics_by_teacher) == set(NAMES)


def test_teacher_check_names_the_teacher_that_fails(
        tmp_path, teacher_ckpts, monkeypatch, toy_env):
    runner = make_runner(
        str(tmp_path / 'floor'), teacher_ckpts,
        [dict(type='mmstructkd.TeacherCheckHook', metric='mIoU',
              min_metric=dict(deeplabv3=99.0), max_batches=1)],
        iters=1, val_interval=1, monkeypatch=monkeypatch, toy_env=toy_env)
    with pytest.raises(TeacherCheckError) as info:
        runner.train()
    assert "teachers['deeplabv3'] scores mIoU=" in str(info.value)
    assert 'below the configured floor 99.0' in str(info.value)
    assert runner.iter == 0

    bad = str(tmp_path / 'bad_teacher.pth')
    state = load(teacher_ckpts['pspnet'])
    state['state_dict'] = {k: v for k, v in state['state_dict'].items()
                           if not k.startswith('auxiliary_head')}
    torch.save(state, bad)
    runner = make_runner(
        str(tmp_path / 'keys'), dict(teacher_ckpts, pspnet=bad),
        [dict(type='mmstructkd.TeacherCheckHook')], iters=1,
        val_interval=1, monkeypatch=monkeypatch, toy_env=toy_env,
        pspnet=dict(ckpt_strict=False))
    with pytest.raises(TeacherCheckError) as info:
        runner.train()
    assert f"teachers['pspnet'].ckpt {bad}" in str(info.value)
    assert 'missing keys' in str(info.value)
    assert runner.iter == 0


@pytest.mark.slow
def test_resume_is_exact_and_export_holds_the_student_only(
        tmp_path, teacher_ckpts, toy_env):
    k = 2
    options = ckpt_options(teacher_ckpts) + [
        f'train_cfg.max_iters={2 * k}', f'train_cfg.val_interval={k}',
        f'default_hooks.checkpoint.interval={k}',
        'default_hooks.checkpoint.max_keep_ckpts=5',
        'train_dataloader.batch_size=4', 'val_dataloader.batch_size=4',
        f'param_scheduler.0.end={2 * k}'
    ]
    straight = str(tmp_path / 'straight')
    run_tool(['tools/train.py', toy_config(MULTI), '--work-dir', straight,
              '--cfg-options'] + options, env=toy_env)
    resumed = str(tmp_path / 'resumed')
    os.makedirs(resumed)
    shutil.copy(osp.join(straight, f'iter_{k}.pth'), resumed)
    with open(osp.join(resumed, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(resumed, f'iter_{k}.pth'))
    run_tool(['tools/train.py', toy_config(MULTI), '--work-dir', resumed,
              '--resume', '--cfg-options'] + options, env=toy_env)
    a = load(osp.join(straight, f'iter_{2 * k}.pth'))
    b = load(osp.join(resumed, f'iter_{2 * k}.pth'))
    assert a['meta']['iter'] == b['meta']['iter'] == 2 * k
    for key in ('state_dict', 'optimizer', 'param_schedulers',
                'random_state'):
        assert_same(a[key], b[key], key)
    # The teachers are in no checkpoint.
    assert {key.split('.')[0] for key in a['state_dict']} <= {
        'architecture', 'distiller', 'data_preprocessor', '_extra_state'}
    logs = scalars(straight)
    assert all(x[key] > 0 for x in logs if LOSSES[0] in x for key in LOSSES)
    val = [x for x in logs if 'mIoU' in x][-1]
    assert all(f'teacher.{name}.mIoU' in val for name in NAMES)

    export_dir = str(tmp_path / 'export')
    run_tool(['tools/model_converters/export_student.py',
              osp.join(straight, f'iter_{2 * k}.pth'), export_dir])
    student_cfg = Config.fromfile(osp.join(export_dir, 'student.py'))
    assert student_cfg.model.type == 'EncoderDecoder'
    assert 'teachers' not in student_cfg.model
    exported = load(osp.join(export_dir, 'student.pth'))['state_dict']
    student = {key[len('architecture.'):]: value
               for key, value in a['state_dict'].items()
               if key.startswith('architecture.')}
    assert set(exported) == set(student)
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS as SEG_MODELS
    init_default_scope('mmseg')
    model = SEG_MODELS.build(student_cfg.model)
    result = model.load_state_dict(exported, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


# Every rank writes what it trained (a hook for the DDP test only).
DUMP_HOOK = textwrap.dedent('''
    import os.path as osp
    import torch
    from mmengine.dist import get_rank
    from mmengine.hooks import Hook
    from mmengine.model import is_model_wrapper
    from mmengine.registry import HOOKS

    @HOOKS.register_module()
    class DumpMultiTeacherRankHook(Hook):
        def after_run(self, runner):
            model = runner.model
            wrapped = type(model).__name__
            model = model.module if is_model_wrapper(model) else model
            state = {k: v.detach() for k, v in model.named_parameters()}
            inside = [name for name, t in model.teachers.items()
                      if any(m is t for m in model.modules())]
            torch.save(dict(state=state, wrapper=wrapped,
                            teachers_inside=inside),
                       osp.join(runner.work_dir, f'rank{get_rank()}.pth'))
''')


@pytest.mark.slow
def test_two_process_training_keeps_ranks_identical(tmp_path, teacher_ckpts,
                                                    toy_env):
    hook_dir = tmp_path / 'hook'
    hook_dir.mkdir()
    (hook_dir / 'dump_multi_rank_hook.py').write_text(DUMP_HOOK)
    test_config = tmp_path / 'dist_config.py'
    test_config.write_text(
        f'_base_ = [{toy_config(MULTI)!r}]\n'
        "custom_imports = dict(imports=['mmstructkd', "
        "'dump_multi_rank_hook'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='mmstructkd.RandomStateHook'),"
        " dict(type='DumpMultiTeacherRankHook')]\n")
    iters = 2
    work_dir = str(tmp_path / 'dist')
    opts = ckpt_options(teacher_ckpts) + [
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        f'default_hooks.checkpoint.interval={iters}',
        'train_dataloader.batch_size=2', 'val_dataloader.batch_size=2',
        'default_hooks.logger.interval=1', f'param_scheduler.0.end={iters}'
    ]
    env = dict(os.environ, **toy_env)
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO_ROOT, str(hook_dir), env.get('PYTHONPATH', '')])
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        env['PORT'] = str(s.getsockname()[1])
    env['PYTHON'] = sys.executable
    env['OMP_NUM_THREADS'] = '1'
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(test_config), '2',
         '--work-dir', work_dir, '--cfg-options'] + opts,
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=900)
    out = proc.stdout
    assert proc.returncode == 0, out[out.rfind('Traceback'):][-6000:]
    r0 = torch.load(osp.join(work_dir, 'rank0.pth'), weights_only=True)
    r1 = torch.load(osp.join(work_dir, 'rank1.pth'), weights_only=True)
    assert r0['wrapper'] == 'DistillDistributedDataParallel'
    assert r0['teachers_inside'] == [] == r1['teachers_inside']
    assert set(r0['state']) == set(r1['state'])
    for key, value in r0['state'].items():
        assert torch.equal(value, r1['state'][key]), key
    assert 'Distributed training: True' in out
    assert all(loss in out for loss in LOSSES)
