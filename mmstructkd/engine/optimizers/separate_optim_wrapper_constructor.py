"""One optimizer per part of the model (student, adversarial critic)."""
from typing import Dict

from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict
from torch import nn

from mmstructkd.models.utils.model_wrappers import unwrap_model
from mmstructkd.registry import OPTIM_WRAPPER_CONSTRUCTORS

# The key whose optimizer takes every parameter not claimed by another key.
REST_KEY = 'architecture'


class _Parts(nn.Module):
    """A view on some top-level children of a model, keeping their names
    (so ``paramwise_cfg.custom_keys`` such as ``'architecture.backbone'``
    match as they would on the whole model)."""

    def __init__(self, children: Dict[str, nn.Module]) -> None:
        super().__init__()
        for name, child in children.items():
            self.add_module(name, child)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SeparateOptimWrapperConstructor:
    """Build an ``OptimWrapperDict`` with one wrapper per model part.

    Each key other than ``'architecture'`` names a top-level submodule of the
    algorithm (e.g. ``'discriminator'``) and optimizes its parameters only;
    ``'architecture'`` optimizes everything else that is trainable: the
    student and the distiller's connectors. The frozen teacher is not part
    of the module tree, so it is in no optimizer. Parameter schedulers can
    then be given per key (``param_scheduler=dict(architecture=[...],
    discriminator=[...])``).

    Example::

        optim_wrapper = dict(
            constructor='mmstructkd.SeparateOptimWrapperConstructor',
            architecture=dict(optimizer=dict(type='SGD', lr=0.01,
                                             momentum=0.9)),
            discriminator=dict(optimizer=dict(type='Adam', lr=4e-4,
                                              betas=(0.9, 0.99))))
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None) -> None:
        if paramwise_cfg is not None:
            raise ValueError(
                'SeparateOptimWrapperConstructor: give paramwise_cfg inside '
                'each key\'s optim wrapper config, not at the top level.')
        if REST_KEY not in optim_wrapper_cfg:
            raise KeyError(
                f'SeparateOptimWrapperConstructor needs a {REST_KEY!r} key '
                f'(the student\'s optimizer); got '
                f'{sorted(optim_wrapper_cfg)}.')
        self.optim_wrapper_cfg = optim_wrapper_cfg

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        model = unwrap_model(model)
        children = dict(model.named_children())
        wrappers = {}
        claimed = set()
        for key, cfg in self.optim_wrapper_cfg.items():
            if key == REST_KEY:
                continue
            if children.get(key) is None:
                raise KeyError(
                    f'optim_wrapper key {key!r} names no submodule of '
                    f'{type(model).__name__}; available: '
                    f'{sorted(k for k, v in children.items() if v is not None)}'
                    f'. (Is model.{key} configured?)')
            claimed.add(key)
            wrappers[key] = self._build(cfg, _Parts({key: children[key]}))
        rest = {k: v for k, v in children.items()
                if k not in claimed and v is not None}
        wrappers[REST_KEY] = self._build(self.optim_wrapper_cfg[REST_KEY],
                                         _Parts(rest))
        return OptimWrapperDict(**wrappers)

    @staticmethod
    def _build(cfg: dict, module: nn.Module):
        cfg = dict(cfg)
        paramwise_cfg = cfg.pop('paramwise_cfg', None)
        cfg.setdefault('type', 'OptimWrapper')
        return DefaultOptimWrapperConstructor(cfg, paramwise_cfg)(module)
