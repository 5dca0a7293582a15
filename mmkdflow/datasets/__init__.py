"""Embedded demo datasets (numpy + Pillow only; no OpenMMLab import here).

See :mod:`mmkdflow.datasets.digits` for the layouts and the class mappings.
"""
from .digits import (DIGITS_CLASSES, DIGITS_CLS_METAINFO,
                     DIGITS_COCO_CATEGORIES, DIGITS_METAINFO, DIGITS_PALETTE,
                     DIGITS_SEG_CLASSES, DIGITS_SEG_METAINFO,
                     DIGITS_SEG_PALETTE, DIGITS_TASKS, FORMAT_VERSION,
                     HOLDOUTS, MARKER_NAME, build_digits_cls, build_digits_det,
                     build_digits_seg, category_id_to_digit,
                     digit_to_category_id, holdout_split, load_source_digits,
                     prepare_digits,
                     read_marker, split_source_indices)

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
