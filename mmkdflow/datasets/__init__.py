"""Embedded demo datasets (numpy + Pillow only; no OpenMMLab import here).

See :mod:`mmkdflow.datasets.digits` for the layouts and the class mappings;
this package exports exactly its ``__all__``.
"""
from .digits import *  # noqa: F401,F403
from .digits import __all__  # noqa: F401
