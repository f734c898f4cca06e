"""Export the student of a distillation checkpoint as a plain model.

Writes ``OUT_DIR/student.pth`` (the student's state dict and meta) and
``OUT_DIR/student.py`` (the student's plain mmseg/mmdet config: the
distillation config with ``model`` replaced by the student and every
mmstructkd-specific entry removed). Both load in a process that never imports
mmstructkd::

    from mmseg.apis import init_model
    model = init_model('OUT_DIR/student.py', 'OUT_DIR/student.pth')

Usage:
    python tools/model_converters/export_student.py CKPT OUT_DIR
        [--config CONFIG]
"""
import argparse
import copy
import os
import os.path as osp
import sys

import torch
from mmengine.config import Config, ConfigDict

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
import mmstructkd  # noqa: E402,F401  (weights-only loading of the ckpt)
from mmstructkd.models.task_models import load_model_config  # noqa: E402

STUDENT_PREFIX = 'architecture.'
# Loops and hooks of ours replaced by mmengine's plain ones in the export.
PLAIN_LOOPS = {'val_cfg': dict(type='ValLoop'),
               'test_cfg': dict(type='TestLoop')}


def student_model_config(distill_cfg: Config) -> ConfigDict:
    """The student's model config dict, with its scope as ``_scope_``."""
    arch = copy.deepcopy(distill_cfg.model.architecture)
    if 'cfg_path' in arch:
        student_cfg, scope = load_model_config(
            arch.cfg_path, cfg_options=arch.get('cfg_options'))
        model = ConfigDict(student_cfg.model)
        if 'data_preprocessor' not in model and \
                'data_preprocessor' in student_cfg:
            model.data_preprocessor = student_cfg.data_preprocessor
    else:
        model = ConfigDict(arch)
        scope = model.pop('_scope_', None) or \
            _infer_scope(model.get('type', ''))
    return model, scope


def _infer_scope(type_name):
    from mmstructkd.models.task_models import infer_scope
    return infer_scope(type_name)


def _is_ours(value) -> bool:
    return isinstance(value, dict) and str(value.get('type', '')).startswith(
        'mmstructkd.')


def plain_student_config(distill_cfg: Config) -> Config:
    """Turn a distillation config into the student's plain task config."""
    model, scope = student_model_config(distill_cfg)
    cfg_dict = copy.deepcopy(distill_cfg.to_dict())
    cfg_dict['model'] = model.to_dict() if hasattr(model, 'to_dict') \
        else dict(model)
    cfg_dict['default_scope'] = scope
    # A plain model must not need mmstructkd to load.
    imports = cfg_dict.get('custom_imports', {}).get('imports', [])
    imports = [m for m in imports if not m.startswith('mmstructkd')]
    if imports:
        cfg_dict['custom_imports']['imports'] = imports
    else:
        cfg_dict.pop('custom_imports', None)
    for key, plain in PLAIN_LOOPS.items():
        loop = cfg_dict.get(key)
        if _is_ours(loop) or (isinstance(loop, dict) and
                              'Distill' in str(loop.get('type', ''))):
            cfg_dict[key] = dict(plain)
    if 'custom_hooks' in cfg_dict:
        cfg_dict['custom_hooks'] = [
            h for h in cfg_dict['custom_hooks'] if not _is_ours(h)
        ]
    # An OptimWrapperDict for a discriminator makes no sense for a student.
    optim_wrapper = cfg_dict.get('optim_wrapper')
    if isinstance(optim_wrapper, dict) and 'architecture' in optim_wrapper:
        cfg_dict['optim_wrapper'] = optim_wrapper['architecture']
    for key in ('teacher_ckpt', 'load_from', 'resume'):
        cfg_dict.pop(key, None)
    return Config(cfg_dict)


def export_student(checkpoint_path: str, out_dir: str,
                   config_path: str = None):
    """Write ``student.pth`` and ``student.py`` to ``out_dir``.

    Returns:
        (path of student.pth, path of student.py).
    """
    checkpoint = torch.load(
        checkpoint_path, map_location='cpu', weights_only=True)
    meta = checkpoint.get('meta', {}) or {}
    if config_path is not None:
        distill_cfg = Config.fromfile(config_path)
    elif 'cfg' in meta:
        distill_cfg = Config.fromstring(meta['cfg'], file_format='.py')
    else:
        raise ValueError(
            f'{checkpoint_path} has no config in its meta (not written by an '
            f'mmengine Runner?); pass the distillation config with --config.')
    if 'architecture' not in distill_cfg.get('model', {}):
        raise ValueError(
            'the config has no model.architecture: is it a distillation '
            'config?')
    state_dict = checkpoint.get('state_dict', checkpoint)
    student_state = {
        k[len(STUDENT_PREFIX):]: v
        for k, v in state_dict.items() if k.startswith(STUDENT_PREFIX)
    }
    if not student_state:
        raise ValueError(
            f'{checkpoint_path} holds no "{STUDENT_PREFIX}*" weights; '
            f'is it a distillation checkpoint?')
    student_cfg = plain_student_config(distill_cfg)
    student_meta = {
        k: meta[k]
        for k in ('dataset_meta', 'mmengine_version', 'epoch', 'iter')
        if k in meta
    }
    student_meta['exported_from'] = osp.basename(checkpoint_path)
    os.makedirs(out_dir, exist_ok=True)
    ckpt_out = osp.join(out_dir, 'student.pth')
    cfg_out = osp.join(out_dir, 'student.py')
    torch.save(dict(state_dict=student_state, meta=student_meta), ckpt_out)
    student_cfg.dump(cfg_out)
    return ckpt_out, cfg_out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='distillation checkpoint')
    parser.add_argument('out_dir', help='where student.pth/.py are written')
    parser.add_argument(
        '--config', help='distillation config (default: the one stored in '
        "the checkpoint's meta)")
    args = parser.parse_args(argv)
    ckpt_out, cfg_out = export_student(args.checkpoint, args.out_dir,
                                       args.config)
    print(f'student weights: {ckpt_out}\nstudent config:  {cfg_out}')


if __name__ == '__main__':
    main()
