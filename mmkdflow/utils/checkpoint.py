"""Safe checkpoint loading and atomic saving.

torch >= 2.6 loads with ``weights_only=True`` by default, and MMEngine 0.10.7
calls ``torch.load`` without naming it, so resuming from MMEngine's own
checkpoints fails on the few non-tensor types they hold (``HistoryBuffer``
and numpy scalars/arrays of the message hub). :func:`allow_mmengine_types`
allow-lists exactly those types; safe loading itself stays on.

MMEngine 0.10.7 writes checkpoints straight to their final name
(``CheckpointHook`` -> ``Runner.save_checkpoint`` ->
``mmengine.runner.checkpoint.save_checkpoint`` -> ``LocalBackend.put``), so a
run killed or out of disk space mid-write leaves a truncated ``epoch_N.pth``.
:func:`install_atomic_checkpoint_save` (run once when ``mmkdflow`` is
imported) routes local saves through :func:`save_atomic` instead: write to a
temporary file in the same folder, ``fsync``, then ``os.replace``. Only the
write changes (same bytes, same path); remote backends (``s3://``,
``pavi://``...) keep MMEngine's own path, and
:func:`uninstall_atomic_checkpoint_save` restores MMEngine's function.
"""
import functools
import os
import os.path as osp
import pickle
import re
import uuid
from collections import OrderedDict
from typing import Any, Dict, List, Optional

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


def state_dict_mismatch(own: Dict, state_dict: Dict,
                        show: int = 5) -> Optional[str]:
    """Describe how ``state_dict`` differs from a model's own state dict.

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
        and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or mismatched):
        return None
    parts = []
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


def check_checkpoint_file(path: str, role: str = 'checkpoint') -> None:
    """Cheap checks of a checkpoint file before MMEngine loads it (resume,
    ``load_from``, ``tools/test.py``), for a clear error instead of a
    zip-reader message: it exists, is not empty, and is a complete zip
    archive (torch's format since 1.6; its central directory is at the
    end, so a truncated file has none) or starts like a legacy pickle.

    Raises:
        FileNotFoundError: The file does not exist.
        CheckpointError: The file is empty, truncated or not a checkpoint.
    """
    import zipfile
    if '://' in path:
        return  # remote: left to MMEngine
    if not osp.isfile(path):
        raise FileNotFoundError(f'{role} {path!r} does not exist')
    size = osp.getsize(path)
    if size == 0:
        raise CheckpointError(f'{role} {path!r} is empty (0 bytes)')
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                archive.namelist()
            return
        except (zipfile.BadZipFile, OSError) as err:
            raise CheckpointError(f'{role} {path!r} is unreadable: '
                                  f'{err}') from None
    with open(path, 'rb') as f:
        head = f.read(2)
    if head[:1] != b'\x80':  # pickle protocol >= 2: legacy torch.save
        raise CheckpointError(
            f'{role} {path!r} ({size} bytes) is truncated or not a torch '
            f'checkpoint (no complete zip archive, no pickle header)')


def save_atomic(obj: Any, path: str) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename,
    so a crash never leaves a half-written file at ``path``.

    The temporary file is ``.<name>.<random>.tmp`` (hidden, not ``*.pth``);
    it is removed when saving raises, and only a killed process can leave
    one behind. The file is ``fsync``-ed before the rename and the folder
    after it, and gets the permissions a plain ``open(path, 'wb')`` would
    give (``0o666`` minus the umask; ``tempfile.mkstemp`` would give
    ``0o600``).

    Args:
        obj: What ``torch.save`` writes.
        path: The final file name.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}.{os.getpid()}.'
                   f'{uuid.uuid4().hex[:8]}.tmp')
    # mode 0o666 through os.open: the kernel applies the umask, as for open()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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
    _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
    """Persist a rename in ``folder`` (best effort: not every OS/filesystem
    lets a folder be opened or synced)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)

def _is_local_target(filename: str, file_client_args: Optional[dict],
                     backend_args: Optional[dict]) -> bool:
    """Whether MMEngine would write ``filename`` with its local backend."""
    if file_client_args is not None or not isinstance(filename, str):
        return False
    from mmengine.fileio import LocalBackend, get_file_backend
    try:
        backend = get_file_backend(filename, backend_args=backend_args)
    except Exception:  # an unknown prefix: leave it to MMEngine
        return False
    return isinstance(backend, LocalBackend)


#: The MMEngine modules that hold a reference to ``save_checkpoint``.
_SAVE_CHECKPOINT_HOLDERS = ('mmengine.runner.checkpoint',
                            'mmengine.runner.runner', 'mmengine.runner')


def install_atomic_checkpoint_save() -> None:
    """Make MMEngine's checkpoint saving atomic for local files (idempotent).

    Replaces ``save_checkpoint`` in ``mmengine.runner.checkpoint``,
    ``mmengine.runner.runner`` (used by ``Runner.save_checkpoint``) and
    ``mmengine.runner`` (used by ``CheckpointHook._publish_model``) with a
    wrapper that, for a local target, writes with :func:`save_atomic` and
    otherwise calls MMEngine's function unchanged. The original stays
    reachable as ``__wrapped__``.
    """
    import importlib
    checkpoint_module = importlib.import_module('mmengine.runner.checkpoint')
    original = checkpoint_module.save_checkpoint
    if getattr(original, '_mmkdflow_atomic', False):
        return

    @functools.wraps(original)
    def save_checkpoint(checkpoint, filename, file_client_args=None,
                        backend_args=None):
        if _is_local_target(filename, file_client_args, backend_args):
            save_atomic(checkpoint, filename)
            return
        original(checkpoint, filename, file_client_args=file_client_args,
                 backend_args=backend_args)

    save_checkpoint._mmkdflow_atomic = True
    for name in _SAVE_CHECKPOINT_HOLDERS:
        module = importlib.import_module(name)
        if getattr(module, 'save_checkpoint', None) is original:
            module.save_checkpoint = save_checkpoint


def uninstall_atomic_checkpoint_save() -> None:
    """Put MMEngine's own ``save_checkpoint`` back (tests, debugging)."""
    import importlib
    for name in _SAVE_CHECKPOINT_HOLDERS:
        module = importlib.import_module(name)
        current = getattr(module, 'save_checkpoint', None)
        if getattr(current, '_mmkdflow_atomic', False):
            module.save_checkpoint = current.__wrapped__


# Installed on import: ``mmkdflow/__init__.py`` imports this module first,
# so any process that imports mmkdflow (tools, ``custom_imports``) saves
# checkpoints atomically.
install_atomic_checkpoint_save()
