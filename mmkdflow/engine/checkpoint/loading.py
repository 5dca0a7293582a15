"""Reading checkpoints: safe loading, clear refusals, key-by-key checks.

Every path of mmkdflow that reads a checkpoint (the teacher, ``--resume``,
``load_from``, ``tools/test.py``, ``tools/export_student.py``) goes through
:func:`load_checkpoint_file` or the cheap pre-check
:func:`check_checkpoint_file`, so their errors are mmkdflow's own: the path
and its role, what is wrong, and what to do. A refusal by safe loading never
suggests turning safe loading off (torch's own message does): mmkdflow never
unpickles arbitrary objects.
"""
import os
import os.path as osp
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Dict, List, Optional

import torch
import torch.nn as nn

from .safe_globals import (has_add_safe_globals, mmengine_types_allowed,
                           restricted_pickle)

#: URL schemes of remote checkpoints (``http(s)`` and MMEngine's prefixes).
REMOTE_PREFIXES = ('http://', 'https://', 'torchvision://', 'open-mmlab://',
                   'openmmlab://', 'mmcls://', 'pavi://', 's3://')


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used, with the reason and the fix."""


def is_remote(path: str) -> bool:
    """Whether ``path`` names a remote checkpoint (URL or MMEngine prefix).

    Returns:
        bool: Whether ``path`` is remote.
    """
    return isinstance(path, str) and path.startswith(REMOTE_PREFIXES)


def hub_cache_path(url: str) -> str:
    """Where torch (and MMEngine's ``load_from_http``) caches the file of
    ``url``: ``<torch hub dir>/checkpoints/<file name>``.

    Returns:
        str: The cache path.
    """
    from urllib.parse import urlparse

    from torch.hub import get_dir
    return osp.join(get_dir(), 'checkpoints',
                    osp.basename(urlparse(url).path))


def fetch_url(url: str, what: str, fix: str) -> str:
    """Download ``url`` into the torch hub cache (once) and return the local
    file.

    Args:
        url (str): An ``http(s)://`` URL.
        what (str): The subject of error messages: the setting that names the
            file (``"teacher_ckpt 'https://...'"``); the URL is added when
            ``what`` does not contain it.
        fix (str): How to avoid the download, appended to the error message.

    Returns:
        str: The local file.

    Raises:
        CheckpointError: The download failed (no network, refused, not
            found), naming the URL, the cache file and ``fix``.
    """
    local = hub_cache_path(url)
    if osp.isfile(local):
        return local
    os.makedirs(osp.dirname(local), exist_ok=True)
    from torch.hub import download_url_to_file
    try:
        download_url_to_file(url, local, progress=False)
    except (OSError, ValueError) as err:  # URLError, HTTPError, timeouts
        source = '' if url in what else f' from {url!r}'
        raise CheckpointError(
            f'{what} could not be downloaded{source} ({type(err).__name__}: '
            f'{_short(err)}). Download it on a machine with internet access '
            f'and put it at {local!r} (the cache that is looked up first), '
            f'or {fix}') from None
    return local


def load_checkpoint_file(path: str, role: str = 'checkpoint') -> Dict:
    """Load a checkpoint on CPU with safe (``weights_only``) unpickling.

    Args:
        path (str): Local path (``~`` expanded, as MMEngine does) or
            ``http(s)://`` URL (downloaded into the torch hub cache, then
            loaded the same way).
        role (str): Used in error messages (e.g. ``'teacher_ckpt'``). Defaults
            to 'checkpoint'.

    Returns:
        What the file holds (usually a dict).

    Raises:
        FileNotFoundError: The file does not exist.
        CheckpointError: The download failed, or the path is a directory,
            or the file is empty, truncated, not a checkpoint, or holds
            objects that safe loading refuses.
    """
    if path.startswith(('http://', 'https://')):
        path = fetch_url(path, f'{role} {path!r}',
                         f'set {role} to a local file path')
    path = osp.expanduser(path)
    _check_is_file(path, role)
    return _weights_only_load(path, role)


def _weights_only_load(path: str, role: str, mmap: bool = False,
                       map_location='cpu'):
    """``torch.load(weights_only=True)`` (on CPU unless ``map_location``
    says otherwise), its failures as :class:`CheckpointError` naming
    ``role`` (refused objects with the allow-list advice of
    :func:`refusal_error`)."""
    try:
        with mmengine_types_allowed():
            if has_add_safe_globals():
                return torch.load(path, map_location=map_location,
                                  weights_only=True, mmap=mmap)
            # torch < 2.4: torch's weights-only unpickler cannot be
            # extended with MMEngine's types, so the same allow-list runs
            # in a restricted ``pickle.Unpickler`` (see
            # mmkdflow.engine.checkpoint.safe_globals)
            return torch.load(path, map_location=map_location,
                              weights_only=False,
                              pickle_module=restricted_pickle, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise refusal_error(path, role, err) from None
    except Exception as err:  # noqa: B902  a damaged file fails anywhere
        raise CheckpointError(
            f'{role} {path!r} is unreadable (truncated or not a torch '
            f'checkpoint): {type(err).__name__}: {_short(err)}') from None


def refusal_error(path: str, role: str,
                  err: pickle.UnpicklingError) -> CheckpointError:
    """mmkdflow's error for a file that safe loading refused (or could not
    unpickle), without torch's advice to disable safe loading.

    Returns:
        CheckpointError: The error, to raise.
    """
    found = re.findall(r'GLOBAL (\S+)', str(err))
    if not found:
        return CheckpointError(
            f'{role} {path!r} is unreadable (truncated or not a torch '
            f'checkpoint): {_short(err)}')
    what = ', '.join(dict.fromkeys(found))
    return CheckpointError(
        f'{role} {path!r} was refused by safe loading because it contains '
        f'objects that are not tensors or plain containers ({what}). '
        f'mmkdflow never unpickles arbitrary objects: such a file can run '
        f'code when it is opened. If the file comes from a source you '
        f'trust, re-save its weights alone (e.g. torch.save({{"state_dict": '
        f'model.state_dict()}}, path)) where it was written, and use that '
        f'file')


def _short(err: BaseException) -> str:
    """The informative part of an error's text, without any advice to turn
    safe loading off."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    lines = [line for line in lines
             if 'weights_only' not in line and 'add_safe_globals' not in line]
    return lines[-1] if lines else type(err).__name__


def _check_is_file(path: str, role: str) -> None:
    """Refuse a missing path, a directory or an empty file."""
    if osp.isdir(path):
        inside = sorted(f for f in os.listdir(path)
                        if f.endswith(('.pth', '.pt', '.ckpt')))
        hint = (f'; it holds {", ".join(inside[:5])}' +
                (' ...' if len(inside) > 5 else '')) if inside else \
            ' (it holds no .pth file)'
        raise CheckpointError(
            f'{role} {path!r} is a directory, not a checkpoint file{hint}. '
            f'Give the path of the .pth file itself')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{role} {path!r} does not exist')
    if osp.getsize(path) == 0:
        raise CheckpointError(f'{role} {path!r} is empty (0 bytes)')


def check_checkpoint_file(path: str, role: str = 'checkpoint') -> None:
    """Check a checkpoint file before MMEngine loads it (resume,
    ``load_from``, ``tools/test.py``), for mmkdflow's error instead of a
    zip-reader message or torch's advice to disable safe loading.

    The file must exist, not be a directory or empty, be a complete zip
    archive (torch's format since 1.6; its central directory is at the end,
    so a truncated file has none) or start like a legacy pickle, and its
    pickled objects must pass safe loading. The last check unpickles the
    object tree with the tensor data memory-mapped (not read), so it costs
    little even for a large checkpoint.

    Args:
        path (str): The local file (``~`` expanded; remote paths are left to
            MMEngine).
        role (str): Used in error messages. Defaults to 'checkpoint'.

    Raises:
        FileNotFoundError: The file does not exist.
        CheckpointError: Anything else above.
    """
    if '://' in path:
        return
    path = osp.expanduser(path)
    _check_is_file(path, role)
    size = osp.getsize(path)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                archive.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise CheckpointError(f'{role} {path!r} is unreadable: '
                                  f'{err}') from None
        _weights_only_load(path, role, mmap=True)
        return
    with open(path, 'rb') as f:
        head = f.read(2)
    if head[:1] != b'\x80':  # pickle protocol >= 2: legacy torch.save
        raise CheckpointError(
            f'{role} {path!r} ({size} bytes) is truncated or not a torch '
            f'checkpoint (no complete zip archive, no pickle header)')
    load_checkpoint_file(path, role)  # legacy format: no mmap, full load


def extract_state_dict(checkpoint, role: str = 'checkpoint') -> Dict:
    """Return the model weights of a loaded checkpoint (``state_dict`` or
    ``model`` entry, or the dict itself), without a ``module.`` prefix.

    Returns:
        dict: The model weights.

    Raises:
        CheckpointError: The checkpoint is not a dict.
    """
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f'{role} holds a {type(checkpoint).__name__}, not a dict of '
            f'weights')
    state = checkpoint
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            state = checkpoint[key]
            break
    out = OrderedDict()
    for key, value in state.items():
        out[key[7:] if key.startswith('module.') else key] = value
    return out


#: State-dict entries that hold text as a ``uint8`` vector (the teacher's
#: identity in a teacher-free checkpoint, see
#: :mod:`mmkdflow.engine.checkpoint.teacher_identity`): their length is the
#: text's, so their shape is not compared; the distiller checks the content.
TEXT_ENTRIES = ('teacher_identity.sha256', 'teacher_identity.ckpt')


def state_dict_mismatch(own: Dict, state_dict: Dict,
                        show: int = 5) -> Optional[str]:
    """Describe how ``state_dict`` differs from a model's own state dict
    (keys, and shapes except those of :data:`TEXT_ENTRIES`).

    Returns:
        ``None`` when keys and shapes agree, else the counts and the first
        ``show`` missing keys, unexpected keys and shape mismatches.
    """
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model '
        f'{tuple(own[k].shape)}' for k in own
        if k in state_dict and hasattr(state_dict[k], 'shape')
        and not k.endswith(TEXT_ENTRIES)
        and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or mismatched):
        return None
    parts: List[str] = []
    for title, items in (('missing keys', missing),
                         ('unexpected keys', unexpected),
                         ('shape mismatches', mismatched)):
        if items:
            more = f' (and {len(items) - show} more)' \
                if len(items) > show else ''
            parts.append(f'{len(items)} {title}: '
                         f'{", ".join(items[:show])}{more}')
    return '; '.join(parts)


def load_weights_strictly(model: nn.Module, state_dict: Dict, role: str,
                          path: str, show: int = 5) -> None:
    """Copy ``state_dict`` into ``model``, refusing any mismatch.

    Raises:
        CheckpointError: Listing the first missing keys, unexpected keys and
            shape mismatches, so a wrong-architecture checkpoint is caught
            instead of leaving a partly random model.
    """
    mismatch = state_dict_mismatch(model.state_dict(), state_dict, show)
    if mismatch is not None:
        raise CheckpointError(
            f'{role} {path!r} does not match the {type(model).__name__} '
            f'built from the config: ' + mismatch +
            '. Check that the checkpoint belongs to this architecture '
            '(depth, channels, number of classes)')
    model.load_state_dict(state_dict, strict=True)
