"""Safe checkpoint loading and atomic saving.

torch >= 2.6 loads with ``weights_only=True`` by default, and MMEngine 0.10.7
calls ``torch.load`` without naming it, so resuming from MMEngine's own
checkpoints fails on the few non-tensor types they hold (``HistoryBuffer``
and numpy scalars/arrays of the message hub). :func:`allow_mmengine_types`
allow-lists exactly those types; safe loading itself stays on.
"""
import os
import os.path as osp
import pickle
import re
import tempfile
from collections import OrderedDict
from typing import Any, Dict, List

import numpy as np
import torch
import torch.nn as nn


def _numpy_globals() -> List[Any]:
    """The numpy callables and classes that pickled arrays/scalars name."""
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [type(np.dtype(t)) for t in (
        np.float64, np.float32, np.float16, np.int64, np.int32, np.int16,
        np.int8, np.uint8, np.bool_)]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


def history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``getattr`` inside safe loading, restricted to what
    MMEngine pickles: ``HistoryBuffer.__getstate__`` stores its statistics
    methods (``HistoryBuffer.min`` ...), which pickle writes as
    ``getattr(HistoryBuffer, 'min')``. Any other use is refused, so the
    allow-list cannot be turned into arbitrary attribute access.

    Raises:
        pickle.UnpicklingError: For anything but a registered statistics
            method of ``HistoryBuffer``.
    """
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and isinstance(name, str) and \
            name in HistoryBuffer._statistics_methods:
        return HistoryBuffer._statistics_methods[name]
    raise pickle.UnpicklingError(
        f'safe loading refuses getattr({getattr(obj, "__name__", obj)!r}, '
        f'{name!r}); mmkdflow allows getattr only for the statistics '
        f'methods of mmengine HistoryBuffer')


def allow_mmengine_types() -> None:
    """Allow-list the types that MMEngine writes into its checkpoints for
    ``torch.load(weights_only=True)`` (idempotent): ``HistoryBuffer``, its
    statistics methods (through :func:`history_buffer_getattr`) and numpy
    arrays, scalars and dtypes."""
    from mmengine.logging import HistoryBuffer
    HistoryBuffer()  # registers the default statistics methods
    torch.serialization.add_safe_globals([
        HistoryBuffer, (history_buffer_getattr, 'builtins.getattr'),
        *_numpy_globals()
    ])


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used, with the reason and the fix."""


def load_checkpoint_file(path: str, role: str = 'checkpoint') -> Dict:
    """Load a checkpoint on CPU with safe (``weights_only``) unpickling.

    Args:
        path: Local path or ``http(s)://`` URL (downloaded into the torch
            hub cache, then loaded the same way).
        role: Used in error messages (e.g. ``'teacher_ckpt'``).

    Raises:
        FileNotFoundError: The file does not exist.
        CheckpointError: The file is empty, truncated, not a checkpoint, or
            holds objects that safe loading refuses.
    """
    if path.startswith(('http://', 'https://')):
        from torch.hub import download_url_to_file, get_dir
        cache = osp.join(get_dir(), 'checkpoints')
        os.makedirs(cache, exist_ok=True)
        local = osp.join(cache, osp.basename(path.split('?')[0]))
        if not osp.exists(local):
            download_url_to_file(path, local, progress=True)
        path = local
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{role} {path!r} does not exist; give the path (or URL) of a '
            f'trained checkpoint')
    if osp.getsize(path) == 0:
        raise CheckpointError(f'{role} {path!r} is empty (0 bytes)')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.findall(r'GLOBAL (\S+)', str(err))
        if not found:
            raise CheckpointError(
                f'{role} {path!r} is unreadable (truncated or not a torch '
                f'checkpoint): {_last_line(err)}') from None
        what = ', '.join(dict.fromkeys(found))
        raise CheckpointError(
            f'{role} {path!r} was refused by safe loading (weights_only=True) '
            f'because it contains objects that are not tensors or plain '
            f'containers ({what}). mmkdflow never unpickles arbitrary '
            f'objects; re-save only the state_dict from a trusted '
            f'environment') from None
    except (EOFError, RuntimeError, OSError, ValueError) as err:
        raise CheckpointError(
            f'{role} {path!r} is unreadable (truncated or not a torch '
            f'checkpoint): {type(err).__name__}: {_last_line(err)}') from None


def _last_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def extract_state_dict(checkpoint: Any, role: str = 'checkpoint') -> Dict:
    """Return the model weights of a loaded checkpoint (``state_dict`` or
    ``model`` entry, or the dict itself), without a ``module.`` prefix."""
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


def load_weights_strictly(model: nn.Module, state_dict: Dict, role: str,
                          path: str, show: int = 5) -> None:
    """Copy ``state_dict`` into ``model``, refusing any mismatch.

    Raises:
        CheckpointError: Listing the first missing keys, unexpected keys and
            shape mismatches, so a wrong-architecture checkpoint is caught
            instead of leaving a partly random model.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model '
        f'{tuple(own[k].shape)}' for k in own
        if k in state_dict and hasattr(state_dict[k], 'shape')
        and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        for title, items in (('missing keys', missing),
                             ('unexpected keys', unexpected),
                             ('shape mismatches', mismatched)):
            if items:
                more = f' (and {len(items) - show} more)' \
                    if len(items) > show else ''
                parts.append(f'{len(items)} {title}: '
                             f'{", ".join(items[:show])}{more}')
        raise CheckpointError(
            f'{role} {path!r} does not match the {type(model).__name__} '
            f'built from the config: ' + '; '.join(parts) +
            '. Check that the checkpoint belongs to this architecture '
            '(depth, channels, number of classes)')
    model.load_state_dict(state_dict, strict=True)


def save_atomic(obj: Any, path: str) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename,
    so a crash never leaves a half-written file at ``path``."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp_', suffix='.pth', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
