"""Build the student and teacher from a model dict or a package config."""
import copy
import difflib
import importlib.util
import os.path as osp
from typing import Optional, Tuple, Union

import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import DefaultScope

from mmkdflow.distributed import revert_syncbn_without_gpu

PACKAGE_SCOPES = {'mmdet': 'mmdet', 'mmseg': 'mmseg',
                  'mmpretrain': 'mmpretrain'}


def locate_config(cfg_path: str, role: str = 'config') -> str:
    """Return the file of a local config or of a package config
    (``'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'``, found in the
    installed package's ``.mim/configs``).

    Returns:
        str: The config file's path.

    Raises:
        FileNotFoundError: Naming the path and where it was looked for.
    """
    if '::' not in cfg_path:
        if not osp.isfile(cfg_path):
            raise FileNotFoundError(
                f'{role} config {cfg_path!r} does not exist; give a local '
                f"config path or a package config such as 'mmdet::retinanet/"
                f"retinanet_r50_fpn_1x_coco.py'")
        return cfg_path
    package, relative = cfg_path.split('::', 1)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f'{role} config {cfg_path!r}: package {package!r} is not '
            f'installed (known: {", ".join(PACKAGE_SCOPES)})')
    root = osp.join(spec.submodule_search_locations[0], '.mim', 'configs')
    path = osp.join(root, relative)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{role} config {cfg_path!r} not found: no file {relative!r} in '
            f'{root}')
    return path


def resolve_model_cfg(cfg: Union[dict, ConfigDict],
                      role: str,
                      default_data_preprocessor: Optional[dict] = None
                      ) -> Tuple[ConfigDict, str]:
    """Turn a student/teacher entry into a model config and its scope.

    The entry is either a model dict (``type=...``; its scope is ``_scope_``
    or the config's ``default_scope``) or ``dict(cfg_path=..., **overrides)``
    where ``cfg_path`` is a package config (``'mmdet::retinanet/...py'``,
    ``'mmseg::...'``, ``'mmpretrain::...'``) or a local config file, whose
    ``model`` is taken and recursively updated with the other keys.

    Like MMEngine's ``Runner``, a top-level ``data_preprocessor`` of the
    config file (mmpretrain keeps it there), or else
    ``default_data_preprocessor``, is used when the model sets none.

    Returns:
        The model config (with ``_scope_`` removed) and its registry scope.
    """
    if not isinstance(cfg, (dict, ConfigDict)):
        raise TypeError(
            f'{role} must be a model dict or dict(cfg_path=...), got '
            f'{type(cfg).__name__}')
    cfg = ConfigDict(copy.deepcopy(dict(cfg)))
    scope = cfg.pop('_scope_', None)
    if 'cfg_path' in cfg:
        cfg_path = cfg.pop('cfg_path')
        file_cfg = Config.fromfile(locate_config(cfg_path, role))
        if 'model' not in file_cfg:
            raise ValueError(f'{role} cfg_path {cfg_path!r} has no `model`')
        merged = Config(dict(model=file_cfg.model))
        if file_cfg.get('data_preprocessor') is not None:
            merged.model.setdefault('data_preprocessor',
                                    file_cfg.data_preprocessor)
        if cfg:
            merged.merge_from_dict(dict(model=dict(cfg)))
        model_cfg = ConfigDict(merged.model)
        if scope is None:
            scope = file_cfg.get('default_scope')
        if scope is None and '::' in cfg_path:
            scope = PACKAGE_SCOPES.get(cfg_path.split('::')[0])
        model_cfg.pop('_scope_', None)
    else:
        if 'type' not in cfg:
            raise ValueError(
                f'{role} config needs `type` (a model dict) or `cfg_path` '
                f"(e.g. cfg_path='mmdet::retinanet/retinanet_r50_fpn_1x_coco"
                f".py'), got keys {sorted(cfg)}")
        model_cfg = cfg
    if default_data_preprocessor is not None:
        model_cfg.setdefault('data_preprocessor',
                             copy.deepcopy(default_data_preprocessor))
    if scope is None:
        current = DefaultScope.get_current_instance()
        scope = current.scope_name if current is not None else None
    if scope is None or scope == 'mmkdflow':
        raise ValueError(
            f'cannot tell which package builds the {role} '
            f'({model_cfg.get("type")!r}); set `_scope_` in it (e.g. '
            f"_scope_='mmdet') or set default_scope in the config")
    return model_cfg, scope


def build_task_model(cfg: Union[dict, ConfigDict], role: str,
                     default_data_preprocessor: Optional[dict] = None
                     ) -> nn.Module:
    """Build a student or teacher with its own package's registry (SyncBN
    becomes BN when no GPU is present: :func:`revert_syncbn_without_gpu`).

    Returns:
        nn.Module: The built model.
    """
    model_cfg, scope = resolve_model_cfg(cfg, role, default_data_preprocessor)
    model_cfg['_scope_'] = scope
    return revert_syncbn_without_gpu(MMENGINE_MODELS.build(model_cfg), role)


def build_mmkdflow_module(cfg: Optional[Union[dict, ConfigDict, nn.Module]]
                          ) -> Optional[nn.Module]:
    """Build a connector or loss in the ``mmkdflow`` scope.

    A name without a scope prefix resolves in mmkdflow first, whatever the
    config's ``default_scope`` (mmdet has a ``MSELoss`` too); prefixed names
    (``'mmdet.CrossEntropyLoss'``) reach other packages.

    Returns:
        nn.Module | None: The built module; a module or ``None`` is returned
        unchanged.
    """
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    from mmkdflow.registry import MODELS
    cfg = copy.deepcopy(dict(cfg))
    cfg.setdefault('_scope_', 'mmkdflow')
    name = cfg.get('type')
    if isinstance(name, str) and '.' not in name:
        MODELS.import_from_location()
        if MODELS.get(name) is None:
            known = list(MODELS.module_dict)
            close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
            raise KeyError(
                f"'{name}' is not registered in mmkdflow. Close matches: "
                f"{', '.join(close) or 'none'}. Registered: "
                f"{', '.join(sorted(known))}")
    return revert_syncbn_without_gpu(MODELS.build(cfg), f'{name} module')
