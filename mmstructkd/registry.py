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

# Algorithms, distillers, losses, connectors, discriminators.
MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope=SCOPE,
    locations=['mmstructkd.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope=SCOPE,
    locations=['mmstructkd.models'])
# Recorders (they are task utilities in mmrazor's vocabulary too).
TASK_UTILS = Registry(
    'task util', parent=MMENGINE_TASK_UTILS, scope=SCOPE,
    locations=['mmstructkd.models'])

HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope=SCOPE,
    locations=['mmstructkd.engine'])
LOOPS = Registry(
    'loop', parent=MMENGINE_LOOPS, scope=SCOPE,
    locations=['mmstructkd.engine'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope=SCOPE,
    locations=['mmstructkd.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope=SCOPE,
    locations=['mmstructkd.engine'])
RUNNERS = Registry(
    'runner', parent=MMENGINE_RUNNERS, scope=SCOPE,
    locations=['mmstructkd.engine'])

DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, scope=SCOPE,
    locations=['mmstructkd.datasets'])


# Evaluation: metrics that mmseg/mmdet do not have (boundary quality).
METRICS = Registry(
    'metric', parent=MMENGINE_METRICS, scope='mmstructkd',
    locations=['mmstructkd.evaluation'])
