"""The one place of mmkdflow's version and of the dependency range it
supports.

The range is what has been tested (see ``docs`` / README "Installation"):

* floor: the prebuilt OpenMMLab 2.x stack, torch 2.1 (with numpy < 2),
  mmcv 2.1.0, mmengine 0.10.7, mmdet 3.3.0, mmsegmentation 1.2.2,
  mmpretrain 1.2.0;
* top: torch 2.13, the newest torch that mmcv 2.1.0's source build accepts
  (torch 2.14's headers need C++20, mmcv 2.1.0's build forces C++17).

``requirements/runtime.txt`` and ``requirements/mminstall.txt`` spell the
same ranges for pip; a test keeps the three in agreement.
"""
from typing import Dict, Tuple

__version__ = '0.1.0'

#: ``package: (lowest supported, first unsupported)`` for the packages
#: checked when mmkdflow is imported (torch, mmcv, mmengine) and when a
#: downstream package is used (mmdet, mmseg, mmpretrain).
SUPPORTED: Dict[str, Tuple[str, str]] = {
    'torch': ('2.1.0', '2.14.0'),
    'mmcv': ('2.1.0', '2.2.0'),
    'mmengine': ('0.10.7', '0.11.0'),
    'mmdet': ('3.3.0', '3.4.0'),
    'mmseg': ('1.2.2', '1.3.0'),
    'mmpretrain': ('1.2.0', '1.3.0'),
}

#: The distribution name pip knows each checked package by.
DISTRIBUTIONS: Dict[str, str] = {
    'torch': 'torch', 'mmcv': 'mmcv', 'mmengine': 'mmengine',
    'mmdet': 'mmdet', 'mmseg': 'mmsegmentation', 'mmpretrain': 'mmpretrain',
}
