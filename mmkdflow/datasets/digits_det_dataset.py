"""DigitsDet as an mmdet ``CocoDataset`` (needs mmdet only)."""
from mmdet.datasets import CocoDataset

from mmkdflow.registry import DATASETS
from .digits import DIGITS_METAINFO, build_digits_det
from .digits_dataset_base import DigitsDatasetMixin


@DATASETS.register_module()
class DigitsDetDataset(DigitsDatasetMixin, CocoDataset):
    """DigitsDet in COCO format (10 classes '0'..'9').

    Args:
        digits_options: Keyword arguments of :func:`build_digits_det`
            (``seed``, ``num_train``, ``num_val``, ``image_size``...).
        **kwargs: Arguments of mmdet's ``CocoDataset``.
    """

    METAINFO = DIGITS_METAINFO
    BUILDER = staticmethod(build_digits_det)
    DEFAULT_ROOT = 'data/digits_det'
    VANILLA_TYPE = 'CocoDataset'
