"""Turn a distiller checkpoint into a deployable model: the student alone
or, when connectors are part of the student's inference (plain FM-KT), the
student with those connectors.

* Feature KD, DiffKD, FM-KT-Theta (no point whose connector changes the
  student at inference): :func:`student_checkpoint` + :func:`student_config`
  give a vanilla downstream model that loads without mmkdflow.
* Plain FM-KT / OFM-KT (a ``replace`` point whose connector transforms the
  student in inference too, e.g. the flow's mean prediction replacing an FPN
  level or the classifier output): :func:`deploy_checkpoint` +
  :func:`deploy_config` give an ``Distiller`` with ``teacher=None``
  and only those points (no losses), loadable with
  ``custom_imports=dict(imports=['mmkdflow'])``; with the connector EMA
  weights when the checkpoint holds them (:class:`ConnectorEMAHook`).

This module writes the configs; the checkpoint layouts are those of
:mod:`~mmkdflow.engine.checkpoint.layout`. What it needs to know about a
connector or a dataset, each class declares itself:
``identity_at_inference_for(cfg)`` on the connector classes and
``vanilla_config(cfg)`` on the digits datasets, both looked up through the
registry without building anything.
"""
import copy
from typing import Dict, List, Mapping, Optional, Tuple

import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.registry import Registry

from mmkdflow.models.utils.model_builder import resolve_model_cfg
from .checkpoint.layout import deploy_checkpoint, student_checkpoint

__all__ = ['connector_identity_at_inference', 'deploy_checkpoint',
           'deploy_config', 'deploy_points', 'export_distiller',
           'student_checkpoint', 'student_config']


def student_config(cfg: Config) -> Config:
    """The config of the student alone, for the downstream package.

    ``model`` becomes the student's model dict, ``default_scope`` its
    package, and mmkdflow's imports and hooks are dropped so the file
    loads without mmkdflow.

    Returns:
        Config: The student's config.
    """
    model_cfg, scope = resolve_model_cfg(
        cfg.model.student, 'student', cfg.get('data_preprocessor'))
    out = Config(copy.deepcopy(cfg.to_dict()))
    out.model = ConfigDict(model_cfg)
    out.default_scope = scope
    out.pop('custom_imports', None)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = out.get(name)
        if loader is not None and 'dataset' in loader:
            loader.dataset = _vanilla_dataset(loader.dataset)
    hooks = out.get('custom_hooks') or []
    out.custom_hooks = [h for h in hooks if not _is_mmkdflow(h.get('type'))]
    if not out.custom_hooks:
        out.pop('custom_hooks')
    return out


def _registered(registry: Registry, type_name: object) -> object:
    """The class (or builder) a config's ``type`` names in ``registry``:
    ``'Name'``, ``'mmkdflow.Name'`` or the object itself.

    Raises:
        KeyError: If the name is not registered.
    """
    if not isinstance(type_name, str):
        return type_name
    name = type_name.split('.', 1)[1] \
        if type_name.startswith('mmkdflow.') else type_name
    found = registry.get(name)
    if found is None:
        raise KeyError(f'{type_name!r} is not registered in mmkdflow\'s '
                       f'{registry.name} registry')
    return found


def _vanilla_dataset(dataset_cfg: ConfigDict) -> ConfigDict:
    """Replace an mmkdflow dataset (which only adds the data builder) by
    the downstream dataset its class names in ``vanilla_config``.

    Raises:
        ValueError: For an mmkdflow dataset class without
            ``vanilla_config``.
    """
    if not _is_mmkdflow(dataset_cfg.get('type')):
        return dataset_cfg
    from mmkdflow.registry import DATASETS
    cls = _registered(DATASETS, dataset_cfg.type)
    vanilla = getattr(cls, 'vanilla_config', None)
    if vanilla is None:
        raise ValueError(
            f'the mmkdflow dataset {dataset_cfg.type!r} gives no '
            f'vanilla_config(cfg), so the exported config cannot name a '
            f'downstream dataset for it')
    return ConfigDict(vanilla(dataset_cfg.to_dict()))


def _is_mmkdflow(type_name: Optional[object]) -> bool:
    if isinstance(type_name, str):
        return type_name.startswith('mmkdflow.')
    module = getattr(type_name, '__module__', '') or ''
    return module.startswith('mmkdflow')


# --------------------------------------------------- deployable with flows
def connector_identity_at_inference(cfg: Mapping) -> bool:
    """Whether the connector of ``cfg`` returns the student tensors
    unchanged at inference, as its registered class declares through
    ``identity_at_inference_for(cfg)``; the connector is not built. A
    connector *module* put in the config answers with its class, which
    reads the module's settings (attributes named like its arguments,
    e.g. ``theta``). A class without the declaration counts as
    transforming them.

    Returns:
        bool: Whether the connector is the identity at inference.
    """
    if isinstance(cfg, nn.Module):
        target, cfg = type(cfg), vars(cfg)
    else:
        from mmkdflow.registry import MODELS
        target = _registered(MODELS, cfg.get('type'))
    declared = getattr(target, 'identity_at_inference_for', None)
    return bool(declared(cfg)) if declared is not None else False


def deploy_points(cfg: Config) -> List[str]:
    """Names of the distillation points that stay in the deployed model:
    those with ``replace`` whose connector changes the student's tensors at
    inference (plain FM-KT, OFM-KT), see
    :func:`connector_identity_at_inference`.

    Returns:
        list[str]: The names of the deployed points.
    """
    points = (cfg.model.get('distill_points') or {}) if 'model' in cfg \
        else {}
    return [name for name, point in points.items()
            if point.get('replace') and point.get('connector') is not None
            and not connector_identity_at_inference(point.connector)]


def deploy_config(cfg: Config, points: List[str]) -> Config:
    """Config of the deployable model of a plain FM-KT distiller.

    ``model`` is an ``mmkdflow.Distiller`` with ``teacher=None``,
    the student's full model dict and, for each point in ``points``, only
    where it reads and replaces and its connector (no teacher, no loss).
    ``default_scope`` is the student's package (so the datasets, pipelines
    and evaluators resolve as in a plain student config) and
    ``custom_imports`` imports mmkdflow.

    Returns:
        Config: The deployable model's config.
    """
    out = student_config(cfg)
    student, scope = resolve_model_cfg(
        cfg.model.student, 'student', cfg.get('data_preprocessor'))
    student = ConfigDict(copy.deepcopy(student.to_dict()))
    student['_scope_'] = scope
    kept = {}
    for name in points:
        point = cfg.model.distill_points[name]
        entry = dict(student=point.student,
                     student_index=point.get('student_index',
                                             point.get('index')),
                     replace=point.replace,
                     connector=copy.deepcopy(point.connector))
        kept[name] = {k: v for k, v in entry.items() if v is not None}
    out.model = ConfigDict(dict(
        type='mmkdflow.Distiller', student=student, teacher=None,
        distill_points=kept))
    out.custom_imports = ConfigDict(imports=['mmkdflow'],
                                    allow_failed_imports=False)
    return out


def export_distiller(cfg: Config, checkpoint: Dict) -> Tuple[Dict, Config]:
    """The deployable checkpoint and config of a distiller: the vanilla
    student, or the student with its inference-time connectors (plain
    FM-KT), see the module docstring.

    Returns:
        tuple[dict, Config]: The checkpoint and the config.
    """
    points = deploy_points(cfg)
    if not points:
        return student_checkpoint(checkpoint), student_config(cfg)
    return deploy_checkpoint(checkpoint, points), deploy_config(cfg, points)
