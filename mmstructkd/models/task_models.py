"""Build the student and teacher: plain mmseg/mmdet models from configs.

A model is given either as a model config dict (``type='EncoderDecoder'``,
...) or, in mmrazor's vocabulary, as ``dict(cfg_path='mmseg::pspnet/...py',
pretrained=False)`` pointing at a whole config of a task package.
``pretrained=True`` there means mmrazor's: the model-zoo weights listed for
that config in its package's metafile (see ``model_zoo_checkpoint``), which
the algorithm loads strictly after building.
"""
import copy
import importlib
from typing import Optional, Tuple, Union

from mmengine.config import Config, ConfigDict
from mmengine.registry import MODELS as ROOT_MODELS
from torch import nn

# Task packages searched, in order, for a model type given without a scope.
TASK_SCOPES = ('mmseg', 'mmdet')


def load_model_config(cfg_path: str,
                      pretrained: bool = False,
                      cfg_options: Optional[dict] = None) -> Tuple[Config, str]:
    """Load the config at ``cfg_path`` and return it with its scope.

    ``'mmseg::pspnet/x.py'`` is resolved inside the installed mmseg package
    (its wheel ships the configs); a plain path is loaded as a file and its
    scope is its ``default_scope``.

    Args:
        cfg_path: ``'package::relative/path.py'`` or a file path.
        pretrained: if True, also set the model-zoo checkpoint of that config
            (from the package's metafile) as ``cfg.model_path``; the student's
            own backbone initialisation (``model.pretrained``,
            ``init_cfg``) is kept either way, as in mmrazor.
        cfg_options: overrides merged into the loaded config with
            ``Config.merge_from_dict`` (keys relative to it, e.g.
            ``{'model.backbone.init_cfg': None}``).
    """
    if '::' in cfg_path:
        from mmengine.hub import get_config
        cfg = get_config(cfg_path, pretrained=pretrained)
        # The config's own default scope wins: a toy config shipped by this
        # package ('mmstructkd::toy/...') still builds an mmseg model.
        scope = cfg.get('default_scope', None) or cfg_path.split('::')[0]
    else:
        cfg = Config.fromfile(cfg_path)
        scope = cfg.get('default_scope', None)
    if scope is None:
        raise KeyError(
            f'{cfg_path} sets no default_scope, so the task package of its '
            f'model is unknown; add default_scope (e.g. "mmseg").')
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    return cfg, scope


def check_pretrained_flag(cfg: dict, role: str) -> None:
    """``pretrained`` of a ``cfg_path`` model is a bool (mmrazor's meaning:
    load that config's model-zoo weights), not a checkpoint path."""
    pretrained = cfg.get('pretrained', False)
    if not isinstance(pretrained, bool):
        raise TypeError(
            f'{role}: pretrained of a cfg_path model is True (load the '
            f'model-zoo weights of {cfg["cfg_path"]!r}) or False, got '
            f'{pretrained!r}; {_weights_advice(role)}.')


def _weights_advice(role: str) -> str:
    if role == 'teacher':
        return ('to load a checkpoint of your own, set teacher_ckpt (a path '
                'or URL) on the distillation model')
    return ('to start from a checkpoint of your own, give it as '
            'cfg_options={\'model.init_cfg\': dict(type=\'Pretrained\', '
            'checkpoint=...)}')


def model_zoo_checkpoint(cfg: Union[dict, nn.Module],
                         role: str) -> Optional[str]:
    """The model-zoo weights that ``dict(cfg_path=..., pretrained=True)``
    asks for: the ``Weights`` of that config in its package's metafile
    (what ``mmengine.hub.get_config(..., pretrained=True)`` puts in
    ``cfg.model_path``, usually a URL).

    Args:
        cfg: the model as given to the algorithm.
        role: ``'architecture'`` or ``'teacher'``, for error messages.

    Returns:
        None unless ``cfg`` is a ``cfg_path`` dict with ``pretrained=True``.

    Raises:
        ValueError: ``pretrained=True`` cannot be honoured: ``cfg_path`` is a
            file path, or its package's metafile has no weights for it.
    """
    if isinstance(cfg, nn.Module) or 'cfg_path' not in cfg:
        return None
    check_pretrained_flag(cfg, role)
    if not cfg.get('pretrained', False):
        return None
    cfg_path = cfg['cfg_path']
    if '::' not in cfg_path:
        raise ValueError(
            f'{role}: pretrained=True loads the model-zoo weights that a '
            f'package\'s metafile lists for a \'package::path.py\' config, '
            f'but cfg_path {cfg_path!r} is a file. The run has not started; '
            f'{_weights_advice(role)}, or set pretrained=False.')
    from mmengine.hub import get_config
    try:
        model_path = get_config(cfg_path, pretrained=True).get('model_path')
    except AssertionError:  # the metafile entry has no `Weights`
        model_path = None
    if not model_path:
        raise ValueError(
            f'{role}: pretrained=True, but the metafile of '
            f'{cfg_path.split("::")[0]!r} lists no model-zoo weights for '
            f'{cfg_path!r}. The run has not started; '
            f'{_weights_advice(role)}, or set pretrained=False.')
    return model_path


def infer_scope(type_name: str) -> Optional[str]:
    """The task package whose model registry knows ``type_name``."""
    if '.' in type_name:
        return type_name.split('.')[0]
    for scope in TASK_SCOPES:
        try:
            importlib.import_module(f'{scope}.registry')
        except ImportError:
            continue
        # Yields the scope's own registry (the root one if it has none).
        with ROOT_MODELS.switch_scope_and_registry(scope) as registry:
            if registry.scope == scope and \
                    registry.get(type_name) is not None:
                return scope
    return None


def resolve_model_config(cfg: dict) -> Tuple[ConfigDict, Optional[str]]:
    """The model config of a student/teacher and the scope it builds in.

    Args:
        cfg: a model config dict (its scope: ``_scope_``, else the task
            package that registers its type, see :func:`infer_scope`), or
            ``dict(cfg_path=..., cfg_options=...)`` (the ``model`` of that
            config, with the config's ``data_preprocessor`` when the model
            has none; its scope: the model's ``_scope_``, else the config's
            ``default_scope``). No
            weights are looked up: ``pretrained`` is the caller's.

    Returns:
        ``(model config without _scope_, scope)``; the scope is None when
        no task package registers the type.
    """
    cfg = copy.deepcopy(dict(cfg))
    if 'cfg_path' in cfg:
        full_cfg, scope = load_model_config(
            cfg['cfg_path'], False, cfg.get('cfg_options'))
        model_cfg = ConfigDict(full_cfg.model)
        if 'data_preprocessor' not in model_cfg and \
                'data_preprocessor' in full_cfg:
            model_cfg.data_preprocessor = full_cfg.data_preprocessor
        # A scope the model itself names wins over the config's default.
        return model_cfg, model_cfg.pop('_scope_', None) or scope
    model_cfg = ConfigDict(cfg)
    scope = model_cfg.pop('_scope_', None) or \
        infer_scope(model_cfg.get('type', ''))
    return model_cfg, scope


def build_task_model(cfg: Union[dict, nn.Module], role: str) -> nn.Module:
    """Build a student/teacher model from a config dict or a ``cfg_path``.

    Args:
        cfg: the model config, ``dict(cfg_path=..., pretrained=...,
            cfg_options=...)``, or an already built module. The model is
            built with its initial weights; ``pretrained=True`` weights are
            loaded by the caller (``model_zoo_checkpoint``).
        role: ``'architecture'`` or ``'teacher'``, for error messages.
    """
    if isinstance(cfg, nn.Module):
        return cfg
    if 'cfg_path' in cfg:
        extra = set(cfg) - {'cfg_path', 'pretrained', 'cfg_options'}
        if extra:
            raise KeyError(
                f'{role}: a cfg_path model takes only cfg_path, pretrained '
                f'and cfg_options, got also {sorted(extra)}; put model '
                f'overrides in cfg_options, e.g. '
                f"cfg_options={{'model.decode_head.num_classes': 19}}.")
        # The model-zoo weights of pretrained=True are looked up and loaded
        # by the algorithm (model_zoo_checkpoint), strictly.
        check_pretrained_flag(cfg, role)
    model_cfg, scope = resolve_model_config(cfg)
    if scope is None:
        raise KeyError(
            f'{role}: model type {model_cfg.get("type")!r} is not '
            f'registered in {TASK_SCOPES}; prefix it with its '
            f'package (e.g. "mmseg.EncoderDecoder") or give '
            f'_scope_.')
    importlib.import_module(f'{scope}.registry')
    # Build inside the task package's scope so every nested component
    # (backbone, heads, losses, data preprocessor) resolves there.
    with ROOT_MODELS.switch_scope_and_registry(scope) as registry:
        try:
            _register_all(scope)
        except ImportError:
            pass
        return registry.build(model_cfg)


def _register_all(scope: str) -> None:
    module = importlib.import_module(f'{scope}.utils')
    if hasattr(module, 'register_all_modules'):
        module.register_all_modules(init_default_scope=False)


def revert_sync_batchnorm_if_needed(model: nn.Module, mode) -> nn.Module:
    """Replace SyncBN by BN when a process group cannot sync it.

    Args:
        mode: ``'auto'`` (convert unless distributed on CUDA, the only setting
            where SyncBN works), True (always convert), False (never).
    """
    from mmengine.dist import is_distributed
    from mmengine.model import revert_sync_batchnorm
    import torch
    if mode == 'auto':
        mode = not (is_distributed() and torch.cuda.is_available())
    if mode:
        model = revert_sync_batchnorm(model)
    return model
