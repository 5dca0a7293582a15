"""Registries of mmkdflow.

Every registry is a child of MMEngine's root registry of the same kind, in the
scope ``mmkdflow``, and declares ``locations`` so that building a module by
name imports the package that registers it, whatever the import order.
A config reaches these modules with ``custom_imports=dict(imports=['mmkdflow'])``
plus ``type='mmkdflow.Name'``, or with ``_scope_='mmkdflow'``.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='mmkdflow',
    locations=['mmkdflow.models'])
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='mmkdflow',
    locations=['mmkdflow.engine'])
LOOPS = Registry(
    'loop', parent=MMENGINE_LOOPS, scope='mmkdflow',
    locations=['mmkdflow.engine'])
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, scope='mmkdflow',
    locations=['mmkdflow.datasets.digits_datasets'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='mmkdflow',
    locations=['mmkdflow.engine'])
