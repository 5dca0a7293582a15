"""Registries of mmkdflow.

Every registry is a child of MMEngine's root registry of the same kind, in the
scope ``mmkdflow``, and declares ``locations`` so that building a module by
name imports the package that registers it, whatever the import order.
A config reaches these modules with
``custom_imports=dict(imports=['mmkdflow'])`` plus ``type='mmkdflow.Name'``,
or with ``_scope_='mmkdflow'``. Importing this module also makes
``mmkdflow::_base_/...`` config names resolve.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import Registry


def _child(parent: Registry, location: str) -> Registry:
    """The ``mmkdflow`` child of MMEngine's root registry ``parent``, whose
    modules are registered by importing ``location``."""
    return Registry(parent.name, parent=parent, scope='mmkdflow',
                    locations=[location])


MODELS = _child(MMENGINE_MODELS, 'mmkdflow.models')
HOOKS = _child(MMENGINE_HOOKS, 'mmkdflow.engine')
LOOPS = _child(MMENGINE_LOOPS, 'mmkdflow.engine')
DATASETS = _child(MMENGINE_DATASETS, 'mmkdflow.datasets.digits_datasets')
OPTIM_WRAPPERS = _child(MMENGINE_OPTIM_WRAPPERS, 'mmkdflow.engine')


def _register_config_package() -> None:
    """Let configs name mmkdflow's own configs as ``mmkdflow::path``, as
    they name ``mmdet::path``, read from ``mmkdflow/.mim/configs``.

    MMEngine 0.10.7 resolves ``package::`` only for the packages of its
    table ``MODULE2PACKAGE``. It looks for ``.mim`` beside the installed
    distribution, which for an editable (PEP 660) install is site-packages,
    where the package is not. A module name (``mmkdflow.registry``) has no
    distribution, so MMEngine takes the folder of the imported package
    instead: right for editable, wheel and source-tree installs alike.
    """
    from mmengine.config.utils import MODULE2PACKAGE
    MODULE2PACKAGE.setdefault('mmkdflow', __name__)


_register_config_package()
