"""Export the student of a distillation checkpoint as a plain model.

Writes ``OUT_DIR/student.pth`` (the student's state dict and meta) and
``OUT_DIR/student.py`` (the student's plain mmseg/mmdet config: the
distillation config with ``model`` replaced by the student and every
mmstructkd-specific entry removed). Both load in a process that never imports
mmstructkd::

    from mmseg.apis import init_model
    model = init_model('OUT_DIR/student.py', 'OUT_DIR/student.pth')

Without ``--config`` the distillation config is the one mmengine's Runner
stored in the checkpoint (``meta['cfg']``). A checkpoint is data, so that
text is read as data and never executed (``mmstructkd.utils.config_data``):
anything but literal assignments is refused, and so is a config that would
make the written ``student.py`` load or import anything beyond OpenMMLab
packages' own configs and modules. Pass ``--config`` (the config you trust)
when a checkpoint is refused.

Usage:
    python tools/model_converters/export_student.py CKPT OUT_DIR
        [--config CONFIG]
"""
import argparse
import copy
import os
import os.path as osp
import posixpath
import re
import sys

import torch
from mmengine.config import Config

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
import mmstructkd  # noqa: E402,F401  (weights-only loading of the ckpt)
from mmstructkd.models.algorithms.class_count import set_num_classes  # noqa: E402,E501
from mmstructkd.models.task_models import resolve_model_config  # noqa: E402
from mmstructkd.utils.config_data import (ConfigNotDataError,  # noqa: E402
                                          parse_config_data)

STUDENT_PREFIX = 'architecture.'
# Loops and hooks of ours replaced by mmengine's plain ones in the export.
PLAIN_LOOPS = {'val_cfg': dict(type='ValLoop'),
               'test_cfg': dict(type='TestLoop')}


def _is_ours(value) -> bool:
    return isinstance(value, dict) and str(value.get('type', '')).startswith(
        'mmstructkd.')


def plain_student_config(distill_cfg: Config) -> Config:
    """Turn a distillation config into the student's plain task config."""
    # Checked beforehand when the config comes from a checkpoint
    # (check_untrusted_student_source): a cfg_path loads a config file.
    # The distiller's one num_classes reached the student's heads when it was
    # built: the exported config must say the same.
    architecture = set_num_classes(distill_cfg.model.architecture,
                                   distill_cfg.model.get('num_classes'),
                                   'architecture')
    model, scope = resolve_model_config(architecture)
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


class UntrustedConfigError(ValueError):
    """The config stored in a checkpoint cannot be used without running or
    loading something the checkpoint names; ``--config`` is needed."""

    def __init__(self, checkpoint_path: str, reason: str):
        super().__init__(
            f'{checkpoint_path}: {reason} A checkpoint is data: nothing '
            f'from it is executed. Pass the distillation config you trust '
            f'with --config CONFIG.')


def openmmlab_packages() -> set:
    """Top-level modules a config from a checkpoint may name (scopes,
    ``custom_imports``, ``package::`` config paths): mmengine's table of
    OpenMMLab packages (mmstructkd included, see
    ``mmstructkd.utils.config_package``) and mmengine/mmcv themselves."""
    from mmengine.config.utils import MODULE2PACKAGE
    return set(MODULE2PACKAGE) | {'mmengine', 'mmcv'}


def config_from_checkpoint_meta(meta: dict, checkpoint_path: str) -> Config:
    """The distillation config the Runner stored in ``meta['cfg']``, read
    as data (:func:`parse_config_data`), never executed; its student is
    checked with :func:`check_untrusted_student_source`."""
    text = meta.get('cfg')
    if text is None:
        raise UntrustedConfigError(
            checkpoint_path, 'it holds no config (meta["cfg"]; not written '
            'by an mmengine Runner?).')
    try:
        distill_cfg = Config(parse_config_data(text))
    except (ConfigNotDataError, KeyError) as e:
        raise UntrustedConfigError(
            checkpoint_path, f'the config stored in it is not plain data '
            f'({e}).') from None
    model = distill_cfg.get('model')
    arch = model.get('architecture') if isinstance(model, dict) else None
    if isinstance(arch, dict):
        check_untrusted_student_source(arch, checkpoint_path)
    return distill_cfg


def check_untrusted_student_source(arch: dict, checkpoint_path: str):
    """A student given as ``cfg_path`` (from a checkpoint) may only name a
    config shipped inside an installed OpenMMLab package: loading a config
    file executes it, and mmengine installs a missing package."""
    if 'cfg_path' not in arch:
        return
    cfg_path = str(arch['cfg_path'])
    match = re.fullmatch(r'(\w+)::([\w.\-/]+\.py)', cfg_path)
    reason = None
    if match is None:
        reason = (f'its student is the config file {cfg_path!r}; loading '
                  f'a config file runs it, and only "package::path.py" '
                  f'configs of installed OpenMMLab packages are loaded for '
                  f'a checkpoint.')
    else:
        package, relative = match.groups()
        parts = relative.split('/')
        if posixpath.isabs(relative) or '..' in parts or '' in parts:
            reason = f'its student config path {cfg_path!r} leaves the ' \
                'package.'
        elif package not in openmmlab_packages():
            reason = f'its student config {cfg_path!r} is not from an ' \
                'OpenMMLab package.'
        else:
            from mmengine.config.utils import MODULE2PACKAGE
            from mmengine.utils import is_installed
            if not is_installed(MODULE2PACKAGE.get(package, package)):
                reason = f'its student config {cfg_path!r} is from ' \
                    f'{package}, which is not installed (it is not ' \
                    f'installed for a checkpoint).'
    if reason:
        raise UntrustedConfigError(checkpoint_path, reason)


def check_untrusted_student_config(student_cfg: Config, text: str,
                                   checkpoint_path: str):
    """``student.py`` written from a checkpoint's config must be data that
    loads nothing: ``Config.fromfile`` follows ``_base_``, imports
    ``custom_imports`` and substitutes ``{{...}}`` in strings, and a dict
    key with a quote in it would make ``pretty_text`` write code."""
    data = student_cfg.to_dict()
    reason = None
    allowed = openmmlab_packages()
    imports = (data.get('custom_imports') or {}).get('imports', [])
    imports = [imports] if isinstance(imports, str) else list(imports)
    if '_base_' in data:
        reason = 'its config has _base_ (files loaded on use).'
    elif not all(isinstance(m, str) and m.split('.')[0] in allowed
                 for m in imports):
        reason = f'its config imports {imports} (custom_imports); only ' \
            f'OpenMMLab packages are imported for a checkpoint.'
    elif str(data.get('default_scope')) not in allowed:
        reason = f'its default_scope {data.get("default_scope")!r} is not ' \
            f'an OpenMMLab package.'
    elif not set(_scopes(data)) <= allowed:
        # mmengine's registry imports "<scope>.registry" for a scoped type.
        reason = f'its config names the scopes ' \
            f'{sorted(set(_scopes(data)) - allowed)} ("scope.Type" or ' \
            f'_scope_), which are not OpenMMLab packages.'
    elif any('{{' in s for s in _strings(data)):
        reason = 'its config has "{{...}}" substitutions in strings.'
    else:
        try:
            same = parse_config_data(text) == data
        except ConfigNotDataError:
            same = False
        if not same:
            reason = 'its config does not write out as plain data (keys ' \
                'or values that are not literals).'
    if reason:
        raise UntrustedConfigError(checkpoint_path, reason)


def _scopes(value):
    """The scopes named by ``type='scope.Type'`` and ``_scope_``."""
    if isinstance(value, dict):
        kind = value.get('type')
        if isinstance(kind, str) and '.' in kind:
            yield kind.split('.')[0]
        if '_scope_' in value:
            yield str(value['_scope_'])
        values = value.values()
    elif isinstance(value, (list, tuple)):
        values = value
    else:
        return
    for item in values:
        yield from _scopes(item)


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from _strings(item)


def export_student(checkpoint_path: str, out_dir: str,
                   config_path: str = None):
    """Write ``student.pth`` and ``student.py`` to ``out_dir``.

    Returns:
        (path of student.pth, path of student.py).
    """
    checkpoint = torch.load(
        checkpoint_path, map_location='cpu', weights_only=True)
    meta = checkpoint.get('meta', {}) or {}
    from_checkpoint = config_path is None
    if from_checkpoint:
        distill_cfg = config_from_checkpoint_meta(meta, checkpoint_path)
    else:
        distill_cfg = Config.fromfile(config_path)
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
    text = student_cfg.pretty_text
    if from_checkpoint:
        check_untrusted_student_config(student_cfg, text, checkpoint_path)
    os.makedirs(out_dir, exist_ok=True)
    ckpt_out = osp.join(out_dir, 'student.pth')
    cfg_out = osp.join(out_dir, 'student.py')
    torch.save(dict(state_dict=student_state, meta=student_meta), ckpt_out)
    with open(cfg_out, 'w', encoding='utf-8') as f:
        f.write(text)
    return ckpt_out, cfg_out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='distillation checkpoint')
    parser.add_argument('out_dir', help='where student.pth/.py are written')
    parser.add_argument(
        '--config', help='distillation config (default: the one stored in '
        "the checkpoint's meta, read as data and never executed)")
    args = parser.parse_args(argv)
    try:
        ckpt_out, cfg_out = export_student(args.checkpoint, args.out_dir,
                                           args.config)
    except UntrustedConfigError as e:
        raise SystemExit(f'export_student: {e}') from None
    print(f'student weights: {ckpt_out}\nstudent config:  {cfg_out}')


if __name__ == '__main__':
    main()
