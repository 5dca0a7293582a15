"""Embedded demo data: detection, segmentation and classification datasets
built deterministically from scikit-learn's 1,797 real 8x8 handwritten digits.

Nothing is downloaded and no custom dataset class is needed: each builder
writes files in the format the downstream package reads natively.

* det: :func:`build_digits_det`, read by mmdet ``CocoDataset`` and pycocotools;
* seg: :func:`build_digits_seg`, read by mmseg ``BaseSegDataset``
  (``img_suffix='.png'``, ``seg_map_suffix='.png'``);
* cls: :func:`build_digits_cls`, read by mmpretrain ``CustomDataset``.

Example::

    from mmkdflow.datasets import prepare_digits
    roots = prepare_digits('data')   # {'det': 'data/digits_det', ...}

or from a shell::

    python -m mmkdflow.datasets --out data --tasks det seg cls
"""
import os.path as osp
from typing import Dict, Sequence

from ._files import FORMAT_VERSION, MARKER_NAME, read_marker
from ._source import (DIGITS_CLASSES, HOLDOUTS, holdout_split,
                      load_source_digits, split_source_indices)
from .digits_cls import DIGITS_CLS_METAINFO, build_digits_cls
from .digits_det import (DIGITS_COCO_CATEGORIES, DIGITS_METAINFO,
                         DIGITS_PALETTE, build_digits_det,
                         category_id_to_digit, digit_to_category_id)
from .digits_seg import (DIGITS_SEG_CLASSES, DIGITS_SEG_METAINFO,
                         DIGITS_SEG_PALETTE, build_digits_seg)

#: Task name -> (sub-folder of ``data_root``, builder).
DIGITS_TASKS = {
    'det': ('digits_det', build_digits_det),
    'seg': ('digits_seg', build_digits_seg),
    'cls': ('digits_cls', build_digits_cls),
}


def prepare_digits(data_root='data',
                   tasks: Sequence[str] = ('det', 'seg', 'cls'),
                   seed: int = 0,
                   **kwargs) -> Dict[str, str]:
    """Build (or reuse) the digits datasets of ``tasks`` under ``data_root``.

    ``det`` goes to ``data_root/digits_det``, ``seg`` to
    ``data_root/digits_seg``, ``cls`` to ``data_root/digits_cls``, each with
    the builder's defaults and ``seed``. Extra keyword arguments
    ``det=dict(...)``, ``seg=dict(...)``, ``cls=dict(...)`` are passed to the
    matching builder. In distributed runs call it from one process (rank 0)
    and synchronise before reading. Returns ``{task: root}``.
    """
    unknown = set(kwargs) - set(DIGITS_TASKS)
    if unknown:
        raise TypeError(f'Unknown arguments {sorted(unknown)}; expected '
                        f'per-task dicts named {sorted(DIGITS_TASKS)}')
    roots = {}
    for task in tasks:
        if task not in DIGITS_TASKS:
            raise ValueError(f'Unknown digits task {task!r}; choose from '
                             f'{sorted(DIGITS_TASKS)}')
        folder, builder = DIGITS_TASKS[task]
        roots[task] = builder(
            osp.join(data_root, folder), seed=seed, **kwargs.get(task, {}))
    return roots


__all__ = [
    'DIGITS_CLASSES', 'DIGITS_CLS_METAINFO', 'DIGITS_COCO_CATEGORIES',
    'DIGITS_METAINFO', 'DIGITS_PALETTE', 'DIGITS_SEG_CLASSES',
    'DIGITS_SEG_METAINFO', 'DIGITS_SEG_PALETTE', 'DIGITS_TASKS',
    'FORMAT_VERSION', 'HOLDOUTS', 'MARKER_NAME', 'build_digits_cls',
    'build_digits_det',
    'build_digits_seg', 'category_id_to_digit', 'digit_to_category_id',
    'holdout_split', 'load_source_digits', 'prepare_digits', 'read_marker',
    'split_source_indices'
]
