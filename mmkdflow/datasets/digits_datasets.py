"""Downstream dataset classes that build the embedded digits data on first
use, so a config runs on a fresh machine with no download and no setup step.

Each class is the downstream package's own dataset (mmdet ``CocoDataset``,
mmseg ``BaseSegDataset``, mmpretrain ``CustomDataset``) with the digits
metainfo; the data is generated under ``data_root`` (under a file lock, so
distributed ranks do not race) unless a matching cache is already there.
"""
import fcntl
import os
import os.path as osp
from contextlib import contextmanager
from typing import Iterator, Optional

from mmdet.datasets import CocoDataset
from mmpretrain.datasets import CustomDataset
from mmseg.datasets import BaseSegDataset

from mmkdflow.registry import DATASETS
from .digits import (DIGITS_CLS_METAINFO, DIGITS_METAINFO,
                     DIGITS_SEG_METAINFO, build_digits_cls, build_digits_det,
                     build_digits_seg)


@contextmanager
def _locked(root: str) -> Iterator[None]:
    parent = osp.dirname(osp.abspath(root))
    os.makedirs(parent, exist_ok=True)
    with open(osp.abspath(root).rstrip('/') + '.lock', 'w') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare(builder, data_root: str, options: Optional[dict]) -> None:
    with _locked(data_root):
        builder(data_root, **(options or {}))


@DATASETS.register_module()
class DigitsDetDataset(CocoDataset):
    """DigitsDet in COCO format (10 classes '0'..'9').

    Args:
        digits_options: Keyword arguments of :func:`build_digits_det`
            (``seed``, ``num_train``, ``num_val``, ``image_size``...).
        **kwargs: Arguments of mmdet's ``CocoDataset``.
    """

    METAINFO = DIGITS_METAINFO

    def __init__(self, *args, digits_options: Optional[dict] = None,
                 **kwargs) -> None:
        _prepare(build_digits_det, kwargs.get('data_root', 'data/digits_det'),
                 digits_options)
        super().__init__(*args, **kwargs)


@DATASETS.register_module()
class DigitsSegDataset(BaseSegDataset):
    """DigitsSeg: background plus the 10 digit classes, per pixel.

    Args:
        digits_options: Keyword arguments of :func:`build_digits_seg`.
        **kwargs: Arguments of mmseg's ``BaseSegDataset``.
    """

    METAINFO = DIGITS_SEG_METAINFO
    _export_defaults = dict(img_suffix='.png', seg_map_suffix='.png')

    def __init__(self, *args, digits_options: Optional[dict] = None,
                 img_suffix: str = '.png', seg_map_suffix: str = '.png',
                 **kwargs) -> None:
        _prepare(build_digits_seg, kwargs.get('data_root', 'data/digits_seg'),
                 digits_options)
        super().__init__(
            *args, img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
            **kwargs)


@DATASETS.register_module()
class DigitsClsDataset(CustomDataset):
    """DigitsCls: single digits in class folders '0'..'9'.

    Args:
        digits_options: Keyword arguments of :func:`build_digits_cls`.
        **kwargs: Arguments of mmpretrain's ``CustomDataset``.
    """

    METAINFO = DIGITS_CLS_METAINFO

    def __init__(self, *args, digits_options: Optional[dict] = None,
                 **kwargs) -> None:
        _prepare(build_digits_cls, kwargs.get('data_root', 'data/digits_cls'),
                 digits_options)
        super().__init__(*args, **kwargs)
