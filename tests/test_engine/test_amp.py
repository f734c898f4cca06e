"""--amp (bf16 autocast on CPU) trains the toy segmentation distillation
configs: the student's forward runs in bfloat16, the distillation losses in
float32. Every loss of every such config is trained; configs that only
combine losses already trained alone here are left out (each run is a
process of its own, and the suite's time is bounded)."""
import glob
import json
import math
import os
import os.path as osp
import textwrap

import pytest
from mmengine.config import Config

from conftest import (TOY_CONFIGS, run_tool, teacher_ckpt_options,
                      toy_config)

DISTILL_CONFIGS = sorted(
    osp.basename(p) for p in glob.glob(osp.join(TOY_CONFIGS, '*.py'))
    if 'SingleTeacherDistill' in open(p).read() or osp.basename(p).startswith(
        ('cwd_', 'skd_', 'ssim_', 'bcd_')))
ALL_SEG_DISTILL = [c for c in DISTILL_CONFIGS if 'toyscenes.py' in c and
                   'coco' not in c and 'det' not in c]
# Their losses (and settings) each train alone in another config here;
# skd_pi-pa-ho, the demo's, stays.
COMBINATIONS = ('skd_pi-pa_', 'skd_pi-pa-fullres_')
SEG_DISTILL = [c for c in ALL_SEG_DISTILL if not c.startswith(COMBINATIONS)]


def distill_losses(config):
    """(name, loss config) of every distillation loss of ``config``, the
    loss's settings included, as comparable text."""
    losses = Config.fromfile(toy_config(config)).model.distiller.distill_losses
    return {repr(sorted(dict(loss).items())) for loss in losses.values()}

# A hook for this test only: during training steps (not validation), the
# dtypes out of the student's classifier conv and into / out of every
# distillation loss, and whether CPU autocast was on.
PROBE_HOOK = textwrap.dedent('''
    import json
    import os.path as osp

    import torch
    from mmengine.hooks import Hook
    from mmengine.model import is_model_wrapper
    from mmengine.registry import HOOKS


    def dtypes(obj):
        if isinstance(obj, torch.Tensor):
            return [str(obj.dtype).replace('torch.', '')]
        if isinstance(obj, (list, tuple)):
            return [d for o in obj for d in dtypes(o)]
        if isinstance(obj, dict):
            return [d for o in obj.values() for d in dtypes(o)]
        return []


    @HOOKS.register_module()
    class AmpProbeHook(Hook):

        def before_train(self, runner):
            model = runner.model
            model = model.module if is_model_wrapper(model) else model
            self.active = False
            self.record = dict(student=[], losses={})

            def student_hook(module, args, output):
                if self.active:
                    self.record['student'].append(dict(
                        autocast=torch.is_autocast_enabled('cpu'),
                        out=dtypes(output)))

            model.architecture.decode_head.conv_seg.register_forward_hook(
                student_hook)
            for name, loss in model.distiller.distill_losses.items():
                def loss_hook(module, args, kwargs, output, name=name):
                    if self.active:
                        self.record['losses'].setdefault(name, []).append(
                            dict(inputs=dtypes(args) + dtypes(kwargs),
                                 out=dtypes(output)))
                loss.register_forward_hook(loss_hook, with_kwargs=True)

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            self.active = True

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            self.active = False

        def after_train(self, runner):
            with open(osp.join(runner.work_dir, 'amp_probe.json'), 'w') as f:
                json.dump(self.record, f)
''')


def probed_config(config, tmp_path):
    """``config`` with the probe hook added to its own custom hooks."""
    hook_dir = tmp_path / 'hook'
    hook_dir.mkdir()
    (hook_dir / 'amp_probe_hook.py').write_text(PROBE_HOOK)
    base = Config.fromfile(toy_config(config))
    hooks = list(base.get('custom_hooks', [])) + [dict(type='AmpProbeHook')]
    imports = list(base.get('custom_imports', {}).get('imports', []))
    path = tmp_path / f'probed_{config}'
    path.write_text(
        f'_base_ = [{toy_config(config)!r}]\n'
        f'custom_imports = dict(imports={imports + ["amp_probe_hook"]!r}, '
        'allow_failed_imports=False)\n'
        f'custom_hooks = {[dict(h) for h in hooks]!r}\n')
    return str(path), str(hook_dir)



def test_seg_distill_configs_found():
    assert len(SEG_DISTILL) >= 5, SEG_DISTILL
    assert len(ALL_SEG_DISTILL) == len(SEG_DISTILL) + len(COMBINATIONS)
    # Leaving the combinations out loses no loss, nor any loss setting.
    kept = set().union(*(distill_losses(c) for c in SEG_DISTILL))
    for config in ALL_SEG_DISTILL:
        assert distill_losses(config) <= kept, config


@pytest.mark.slow
@pytest.mark.parametrize('config', SEG_DISTILL)
def test_amp_bf16_on_cpu(config, tmp_path, toy_env, request):
    iters = 2
    work_dir = str(tmp_path / 'amp')
    sched = Config.fromfile(toy_config(config)).param_scheduler
    keys = list(sched) if isinstance(sched, dict) else [None]
    opts = teacher_ckpt_options(config, request) + [
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        f'default_hooks.checkpoint.interval={iters}',
        'default_hooks.logger.interval=1',
        'train_dataloader.batch_size=2', 'val_dataloader.batch_size=2'
    ] + [f'param_scheduler.{k + "." if k else ""}0.end={iters}'
         for k in keys]
    probed, hook_dir = probed_config(config, tmp_path)
    env = dict(toy_env, PYTHONPATH=os.pathsep.join(
        [hook_dir, os.environ.get('PYTHONPATH', '')]))
    proc = run_tool(['tools/train.py', probed, '--work-dir',
                     work_dir, '--amp', '--cfg-options'] + opts, env=env)
    assert 'AutocastOptimWrapper' in proc.stdout
    with open(osp.join(work_dir, 'amp_probe.json')) as f:
        probe = json.load(f)
    # The student's forward ran under bf16 autocast in every training step.
    assert len(probe['student']) == iters, probe['student']
    for call in probe['student']:
        assert call == dict(autocast=True, out=['bfloat16']), call
    # Every distillation loss ran and returned float32, although (some of)
    # what it was given was bfloat16.
    losses = Config.fromfile(toy_config(config)).model.distiller
    assert set(probe['losses']) == set(losses.distill_losses)
    inputs = set()
    for name, calls in probe['losses'].items():
        assert calls, name
        for call in calls:
            assert call['out'] and set(call['out']) == {'float32'}, (name,
                                                                     call)
            inputs.update(call['inputs'])
    assert 'bfloat16' in inputs, probe['losses']
    logs = []
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data',
                                   'scalars.json')):
        with open(path) as f:
            logs += [json.loads(line) for line in f]
    train = [x for x in logs if 'loss' in x]
    assert len(train) == iters
    distill = [k for k in train[0] if k.startswith('distill.loss_')]
    assert distill
    for entry in train:
        for key in distill + ['loss']:
            assert math.isfinite(entry[key]) and entry[key] >= 0 or \
                key == 'distill.loss_ho', (key, entry[key])
