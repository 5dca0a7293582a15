"""DigitsCls as an mmpretrain ``CustomDataset`` (needs mmpretrain only)."""
from mmpretrain.datasets import CustomDataset

from mmkdflow.registry import DATASETS
from .digits import DIGITS_CLS_METAINFO, build_digits_cls
from .digits_dataset_base import DigitsDatasetMixin


@DATASETS.register_module()
class DigitsClsDataset(DigitsDatasetMixin, CustomDataset):
    """DigitsCls: single digits in class folders '0'..'9'.

    Args:
        digits_options: Keyword arguments of :func:`build_digits_cls`.
        **kwargs: Arguments of mmpretrain's ``CustomDataset``.
    """

    METAINFO = DIGITS_CLS_METAINFO
    BUILDER = staticmethod(build_digits_cls)
    DEFAULT_ROOT = 'data/digits_cls'
    VANILLA_TYPE = 'CustomDataset'
