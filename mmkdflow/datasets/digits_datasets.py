"""Downstream dataset classes that build the embedded digits data on first
use, so a config runs on a fresh machine with no download and no setup step.

Each class is the downstream package's own dataset (mmdet ``CocoDataset``,
mmseg ``BaseSegDataset``, mmpretrain ``CustomDataset``) with the digits
metainfo; the data is generated under ``data_root`` (under a file lock, so
distributed ranks do not race) unless a matching cache is already there.
Each class also gives the config of its downstream dataset
(:meth:`~.digits_dataset_base.DigitsDatasetMixin.vanilla_config`), which
the student export writes so the exported config runs without mmkdflow.

This module is the registry's location for datasets. It imports each
task's module only when that task's package is installed, so a detection
config needs mmdet, not mmseg or mmpretrain. Without the package, the name
is registered as a stand-in that raises :class:`MissingTaskPackage`,
naming the extra to install.
"""
import importlib
from typing import Callable

from mmkdflow.registry import DATASETS

#: ``class name -> (module, task, package, extra)`` of every digits dataset.
TASK_DATASETS = {
    'DigitsDetDataset': ('digits_det_dataset', 'detection', 'mmdet', 'det'),
    'DigitsSegDataset': ('digits_seg_dataset', 'segmentation',
                         'mmseg', 'seg'),
    'DigitsClsDataset': ('digits_cls_dataset', 'classification',
                         'mmpretrain', 'cls'),
}


class MissingTaskPackage(ImportError):
    """A config needs an OpenMMLab task package that is not installed."""


def missing_package_message(what: str, package: str, extra: str,
                            error: ImportError) -> str:
    """mmkdflow's words for a missing task package: what needs it, what
    is missing and the extra that installs it."""
    return (f'{what} needs {package}, which cannot be imported '
            f'({type(error).__name__}: {error}). Install the extra: '
            f'pip install -e ".[{extra}]" (or "mmkdflow[{extra}]")')


def _stand_in(name: str, task: str, package: str, extra: str,
              error: ImportError) -> Callable:
    message = missing_package_message(
        f'mmkdflow.{name} ({task} demo data)', package, extra, error)

    def build(*args, **kwargs):
        raise MissingTaskPackage(message)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f'Stand-in for {name}: {message}.'
    return build


def _import_task_datasets() -> None:
    for name, (module, task, package, extra) in TASK_DATASETS.items():
        try:
            importlib.import_module(f'{__package__}.{module}')
        except ModuleNotFoundError as error:
            # the package itself, or one of its own imports (mmseg 1.2
            # imports ftfy without declaring it), is missing
            if (error.name or '').split('.')[0] == 'mmkdflow':
                raise
            DATASETS.register_module(
                name=name,
                module=_stand_in(name, task, package, extra, error))


_import_task_datasets()
