"""DigitsSeg as an mmseg ``BaseSegDataset`` (needs mmseg only)."""
from mmseg.datasets import BaseSegDataset

from mmkdflow.registry import DATASETS
from .digits import DIGITS_SEG_METAINFO, build_digits_seg
from .digits_dataset_base import DigitsDatasetMixin


@DATASETS.register_module()
class DigitsSegDataset(DigitsDatasetMixin, BaseSegDataset):
    """DigitsSeg: background plus the 10 digit classes, per pixel.

    Args:
        digits_options: Keyword arguments of :func:`build_digits_seg`.
        **kwargs: Arguments of mmseg's ``BaseSegDataset``.
    """

    METAINFO = DIGITS_SEG_METAINFO
    BUILDER = staticmethod(build_digits_seg)
    DEFAULT_ROOT = 'data/digits_seg'
    VANILLA_TYPE = 'BaseSegDataset'
    VANILLA_DEFAULTS = dict(img_suffix='.png', seg_map_suffix='.png')
