"""Turn a distiller checkpoint into a checkpoint of the student alone."""
import copy
from typing import Dict, Optional

from mmengine.config import Config, ConfigDict

from mmkdflow.models.utils.model_builder import resolve_model_cfg

STUDENT_PREFIX = 'student.'


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
    meta = checkpoint.get('meta', {}) or {}
    out_meta = {k: copy.deepcopy(meta[k])
                for k in ('dataset_meta', 'epoch', 'iter', 'seed')
                if k in meta}
    out_meta['exported_from'] = 'mmkdflow distiller'
    return {'meta': out_meta, 'state_dict': student}


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
