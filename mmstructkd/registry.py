"""Registries of mmstructkd.

Every registry is a child of mmengine's root registry of the same kind, with
``scope='mmstructkd'`` and ``locations`` pointing at the package that fills it.
So a component can be named three ways in a config:

* ``type='mmstructkd.ChannelWiseDivergence'`` from any scope (an mmseg or mmdet
  config with ``custom_imports=dict(imports=['mmstructkd'])``),
* ``type='ChannelWiseDivergence'`` inside a dict built in our scope
  (``_scope_='mmstructkd'`` or ``default_scope='mmstructkd'``),
* and mmseg/mmdet components keep their own names in their own scopes.

There is a registry here only for the kinds this package registers
components into; optimizers, schedulers, samplers, transforms and the
like come from mmengine and the task packages.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import Registry

SCOPE = 'mmstructkd'


def _child_registry(name: str, parent: Registry, location: str) -> Registry:
    """A registry of ours: a child of mmengine's ``parent``, in our scope,
    filled by importing the package ``location``."""
    return Registry(name, parent=parent, scope=SCOPE, locations=[location])


# Algorithms, distillers, losses, connectors, discriminators.
MODELS = _child_registry('model', MMENGINE_MODELS, 'mmstructkd.models')
MODEL_WRAPPERS = _child_registry('model_wrapper', MMENGINE_MODEL_WRAPPERS,
                                 'mmstructkd.models')
# Recorders (they are task utilities in mmrazor's vocabulary too).
TASK_UTILS = _child_registry('task util', MMENGINE_TASK_UTILS,
                             'mmstructkd.models')

HOOKS = _child_registry('hook', MMENGINE_HOOKS, 'mmstructkd.engine')
LOOPS = _child_registry('loop', MMENGINE_LOOPS, 'mmstructkd.engine')
OPTIM_WRAPPERS = _child_registry('optim_wrapper', MMENGINE_OPTIM_WRAPPERS,
                                 'mmstructkd.engine')
OPTIM_WRAPPER_CONSTRUCTORS = _child_registry(
    'optimizer wrapper constructor', MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    'mmstructkd.engine')
RUNNERS = _child_registry('runner', MMENGINE_RUNNERS, 'mmstructkd.engine')

DATASETS = _child_registry('dataset', MMENGINE_DATASETS,
                           'mmstructkd.datasets')

# Evaluation: metrics that mmseg/mmdet do not have (boundary quality).
METRICS = _child_registry('metric', MMENGINE_METRICS,
                          'mmstructkd.evaluation')
