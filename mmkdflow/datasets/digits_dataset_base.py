"""What every digits dataset adds to its downstream dataset class: the
data builder, run under a file lock on first use, and the way back to the
vanilla downstream config. Imports no OpenMMLab task package.
"""
import copy
import fcntl
import os
import os.path as osp
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, Mapping, Optional


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


class DigitsDatasetMixin:
    """What a digits dataset adds to its downstream dataset class: the data
    builder (in ``__init__``, through ``digits_options``) and the way back
    to the vanilla downstream config.

    Attributes:
        BUILDER: The data builder, called with ``data_root`` and the
            dataset's ``digits_options`` before the downstream class reads
            the files.
        DEFAULT_ROOT: ``data_root`` when the config gives none.
        VANILLA_TYPE: Name of the downstream dataset class in its package's
            registry (the exported config's ``default_scope``).
        VANILLA_DEFAULTS: Arguments whose default differs between the
            digits class and the downstream class, written into the
            vanilla config unless given.
    """

    METAINFO: dict
    BUILDER: Callable[..., str]
    DEFAULT_ROOT: str
    VANILLA_TYPE: str = ''
    VANILLA_DEFAULTS: Dict[str, object] = {}

    def __init__(self, *args, digits_options: Optional[dict] = None,
                 **kwargs) -> None:
        for key, value in self.VANILLA_DEFAULTS.items():
            kwargs.setdefault(key, value)
        data_root = kwargs.get('data_root', self.DEFAULT_ROOT)
        with _locked(data_root):
            type(self).BUILDER(data_root, **(digits_options or {}))
        super().__init__(*args, **kwargs)

    @classmethod
    def vanilla_config(cls, dataset_cfg: Mapping) -> Dict:
        """The config of the downstream dataset that reads the same files.

        ``type`` becomes :attr:`VANILLA_TYPE`, ``digits_options`` (the
        builder's arguments) is dropped, ``metainfo`` is written out (the
        class names and palette), and :attr:`VANILLA_DEFAULTS` fill the
        arguments the config leaves to the digits class; every other
        argument (``data_root``, ``ann_file``, ``pipeline`` ...) is kept.

        Args:
            dataset_cfg: The dataset config naming this class.

        Returns:
            A plain dict config.
        """
        out = copy.deepcopy(dict(dataset_cfg))
        out['type'] = cls.VANILLA_TYPE
        out.pop('digits_options', None)
        out['metainfo'] = copy.deepcopy(dict(cls.METAINFO))
        for key, value in cls.VANILLA_DEFAULTS.items():
            out.setdefault(key, value)
        return out
