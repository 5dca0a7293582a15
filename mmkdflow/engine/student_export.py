"""Turn a distiller checkpoint into a deployable model: the student alone
or, when connectors are part of the student's inference (plain FM-KT), the
student with those connectors.

* Feature KD, DiffKD, FM-KT-Theta (no point whose connector changes the
  student at inference): :func:`student_checkpoint` + :func:`student_config`
  give a vanilla downstream model that loads without mmkdflow.
* Plain FM-KT / OFM-KT (a ``replace`` point whose connector transforms the
  student in inference too, e.g. the flow's mean prediction replacing an FPN
  level or the classifier output): :func:`deploy_checkpoint` +
  :func:`deploy_config` give an ``OfflineDistiller`` with ``teacher=None``
  and only those points (no losses), loadable with
  ``custom_imports=dict(imports=['mmkdflow'])``; with the connector EMA
  weights when the checkpoint holds them (:class:`ConnectorEMAHook`).
"""
import copy
from typing import Dict, List, Optional, Tuple

from mmengine.config import Config, ConfigDict

from mmkdflow.models.utils.model_builder import (build_mmkdflow_module,
                                                 resolve_model_cfg)

STUDENT_PREFIX = 'student.'
CONNECTOR_PREFIX = 'connectors.'


def student_checkpoint(checkpoint: Dict) -> Dict:
    """Keep the ``student.`` weights (prefix removed) and the plain-type
    ``meta`` (dataset classes, epoch, iteration), as the downstream
    package writes them, so ``init_detector``/``init_model``/``get_model``
    load it with safe loading and without mmkdflow.

    Raises:
        ValueError: If the checkpoint holds no student weights.
    """
    state = checkpoint.get('state_dict', checkpoint)
    student = {
        k[len(STUDENT_PREFIX):]: v
        for k, v in state.items() if k.startswith(STUDENT_PREFIX)
    }
    if not student:
        raise ValueError(
            'the checkpoint has no `student.*` weights; is it a checkpoint '
            'of an mmkdflow distiller?')
    return {'meta': _export_meta(checkpoint), 'state_dict': student}


def _export_meta(checkpoint: Dict) -> Dict:
    meta = checkpoint.get('meta', {}) or {}
    out_meta = {k: copy.deepcopy(meta[k])
                for k in ('dataset_meta', 'epoch', 'iter', 'seed')
                if k in meta}
    out_meta['exported_from'] = 'mmkdflow distiller'
    return out_meta


def student_config(cfg: Config) -> Config:
    """The config of the student alone, for the downstream package.

    ``model`` becomes the student's model dict, ``default_scope`` its
    package, and mmkdflow's imports and hooks are dropped so the file
    loads without mmkdflow.
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


def _vanilla_dataset(dataset_cfg: ConfigDict) -> ConfigDict:
    """Replace an mmkdflow dataset class (which only adds the data builder)
    by its downstream base class with the same metainfo."""
    if not _is_mmkdflow(dataset_cfg.get('type')):
        return dataset_cfg
    from mmkdflow.registry import DATASETS
    name = dataset_cfg.type
    cls = DATASETS.get(name.split('.', 1)[1]) if isinstance(name, str) \
        else name
    out = ConfigDict(copy.deepcopy(dataset_cfg.to_dict()))
    out.type = cls.__mro__[1].__name__
    out.pop('digits_options', None)
    out.metainfo = ConfigDict(copy.deepcopy(dict(cls.METAINFO)))
    for key in ('img_suffix', 'seg_map_suffix'):
        default = getattr(cls, '_export_defaults', {}).get(key)
        if default is not None:
            out.setdefault(key, default)
    return out


def _is_mmkdflow(type_name: Optional[object]) -> bool:
    if isinstance(type_name, str):
        return type_name.startswith('mmkdflow.')
    module = getattr(type_name, '__module__', '') or ''
    return module.startswith('mmkdflow')


# --------------------------------------------------- deployable with flows
def deploy_points(cfg: Config) -> List[str]:
    """Names of the distillation points that stay in the deployed model:
    those with ``replace`` whose connector changes the student's tensors at
    inference (plain FM-KT, OFM-KT). A connector tells it does not by an
    ``identity_at_inference`` attribute (FM-KT-Theta); each connector is
    built from its config to ask.
    """
    points = (cfg.model.get('distill_points') or {}) if 'model' in cfg \
        else {}
    names = []
    for name, point in points.items():
        if not point.get('replace') or point.get('connector') is None:
            continue
        connector = build_mmkdflow_module(copy.deepcopy(point.connector))
        if not getattr(connector, 'identity_at_inference', False):
            names.append(name)
    return names


def deploy_config(cfg: Config, points: List[str]) -> Config:
    """Config of the deployable model of a plain FM-KT distiller.

    ``model`` is an ``mmkdflow.OfflineDistiller`` with ``teacher=None``,
    the student's full model dict and, for each point in ``points``, only
    where it reads and replaces and its connector (no teacher, no loss).
    ``default_scope`` is the student's package (so the datasets, pipelines
    and evaluators resolve as in a plain student config) and
    ``custom_imports`` imports mmkdflow.
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
        type='mmkdflow.OfflineDistiller', student=student, teacher=None,
        distill_points=kept))
    out.custom_imports = ConfigDict(imports=['mmkdflow'],
                                    allow_failed_imports=False)
    return out


def deploy_checkpoint(checkpoint: Dict, points: List[str]) -> Dict:
    """Weights of the deployable model: ``student.*`` plus the connectors of
    ``points`` (their EMA weights when the checkpoint holds them).

    Raises:
        ValueError: If the checkpoint lacks the student or a connector.
    """
    from .hooks.connector_ema_hook import ema_connector_state
    state = checkpoint.get('state_dict', checkpoint)
    out = {k: v for k, v in state.items() if k.startswith(STUDENT_PREFIX)}
    if not out:
        raise ValueError(
            'the checkpoint has no `student.*` weights; is it a checkpoint '
            'of an mmkdflow distiller?')
    ema = ema_connector_state(checkpoint)
    averaged = []
    for name in points:
        prefix = f'{CONNECTOR_PREFIX}{name}.'
        weights = {k: v for k, v in state.items() if k.startswith(prefix)}
        if not weights:
            raise ValueError(
                f'the checkpoint has no weights of the connector of point '
                f'{name!r} ({prefix}*); was it written with this config?')
        from_ema = {k: v for k, v in ema.items() if k.startswith(prefix)}
        if from_ema:
            averaged.append(name)
        weights.update(from_ema)
        out.update(weights)
    meta = _export_meta(checkpoint)
    meta['connector_ema'] = averaged  # points exported with EMA weights
    return {'meta': meta, 'state_dict': out}


def export_distiller(cfg: Config, checkpoint: Dict) -> Tuple[Dict, Config]:
    """The deployable checkpoint and config of a distiller: the vanilla
    student, or the student with its inference-time connectors (plain
    FM-KT), see the module docstring."""
    points = deploy_points(cfg)
    if not points:
        return student_checkpoint(checkpoint), student_config(cfg)
    return deploy_checkpoint(checkpoint, points), deploy_config(cfg, points)
