"""Version checks: the dependency range of :mod:`mmkdflow.version` enforced
with mmkdflow's own message.

mmkdflow leans on MMEngine internals (the checkpoint hook's save step, the
train loops, ``Runner`` resume state, ``HistoryBuffer``) and on torch
features that appeared over 2.x, so a version outside the tested range
would fail later and obscurely. As mmdet, mmseg and mmpretrain do, the range
is checked when the package is imported: torch, mmcv and mmengine at
``import mmkdflow`` (their versions are read from the already imported
modules or, for mmcv, from the installed metadata, so nothing new is
imported), mmdet / mmseg / mmpretrain when a distiller builds a model of
theirs (:func:`check_downstream_versions`), so a user of one task is not
refused for an old copy of another task's package.

Features that need more than the floor say so when they are used
(:func:`require_torch`), never at import.
"""
import functools
import importlib.metadata
import sys
from typing import Iterable, Optional

from packaging.version import Version

from .version import DISTRIBUTIONS, SUPPORTED, __version__

#: How to get a supported stack, appended to every range error.
FIX = ('Install a supported version (for example the prebuilt OpenMMLab '
       '2.x stack: pip install "torch==2.1.2" "numpy<2" and mmcv 2.1.0), '
       'or run `make env` in the mmkdflow checkout for the tested lock; '
       'see README "Installation"')


class VersionError(ImportError):
    """A dependency outside mmkdflow's supported range."""


def parse_version(version: str):
    """``'2.1.2+cu121'`` -> ``Version('2.1.2')``: the public version (the
    local build tag dropped), pre-releases before the release (PEP 440).

    Returns:
        Version: The public version.
    """
    return Version(version.split('+')[0])


def installed_version(package: str) -> Optional[str]:
    """The version of ``package`` without importing it: the imported
    module's ``__version__`` if it is loaded, else pip's metadata, else
    ``None`` (not installed).

    Returns:
        str | None: The version, or ``None``.
    """
    module = sys.modules.get(package)
    version = getattr(module, '__version__', None)
    if isinstance(version, str):
        return version
    names = [DISTRIBUTIONS.get(package, package)]
    if package == 'mmcv':
        names.append('mmcv-lite')
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def check_version(package: str, version: Optional[str] = None) -> None:
    """Refuse ``package`` at ``version`` (default: the installed one) when
    it is outside :data:`mmkdflow.version.SUPPORTED`.

    Raises:
        VersionError: Naming what is installed, the supported range and the
            fix. A package that is not installed is not refused here (the
            import that needs it says so).
    """
    if version is None:
        version = installed_version(package)
    if version is None:
        return
    low, high = SUPPORTED[package]
    if not parse_version(low) <= parse_version(version) < \
            parse_version(high):
        raise VersionError(
            f'mmkdflow {__version__} supports {package} >= {low}, < {high}, '
            f'but {package} {version} is installed. {FIX}')


def check_core_versions() -> None:
    """Check torch, mmcv and mmengine (called by ``import mmkdflow``)."""
    for package in ('torch', 'mmcv', 'mmengine'):
        check_version(package)


def check_downstream_versions(
        packages: Iterable[str] = ('mmdet', 'mmseg', 'mmpretrain')) -> None:
    """Check those of mmdet / mmseg / mmpretrain that are imported."""
    for package in packages:
        if package in sys.modules:
            check_version(package)


@functools.lru_cache(maxsize=None)
def _at_least(installed: str, version: str) -> bool:
    return parse_version(installed) >= parse_version(version)


def torch_at_least(version: str) -> bool:
    """Whether the running torch is ``version`` or newer (the comparison is
    cached per version pair: this runs in forward passes, e.g. of every
    compiled connector call).

    Returns:
        bool: Whether torch is ``version`` or newer.
    """
    import torch
    return _at_least(torch.__version__, version)


def require_torch(version: str, feature: str, why: str) -> None:
    """Refuse ``feature`` on a torch older than ``version``.

    Args:
        version (str): The lowest torch that has what ``feature`` needs.
        feature (str): The setting the user chose (``"compile=True"``).
        why (str): What that torch provides.

    Raises:
        RuntimeError: Naming the feature, the installed torch, the one it
            needs and why, and how to do without it.
    """
    import torch
    if not torch_at_least(version):
        raise RuntimeError(
            f'{feature} needs torch >= {version} ({why}); torch '
            f'{torch.__version__} is installed. Upgrade torch (mmkdflow '
            f'supports up to {SUPPORTED["torch"][1]}, exclusive) or turn '
            f'{feature.split("=")[0]} off')
