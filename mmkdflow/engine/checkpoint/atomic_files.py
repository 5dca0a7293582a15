"""Writing files so that a crash never leaves a half-written one in place.

Every file is written under a temporary name in its final folder
(``.<name>.<pid>.<8 hex>.tmp``: hidden, not ``*.pth``, so nothing that looks
for checkpoints ever picks it up), ``fsync``-ed, then renamed over the final
name with ``os.replace`` (atomic on POSIX filesystems) and the folder is
``fsync``-ed. A reader thus sees either the old file or the complete new
one. Only a killed process can leave a temporary file behind;
:func:`remove_stale_temporaries` removes those whose writer is dead.
"""
import contextlib
import os
import os.path as osp
import re
import uuid
from typing import Any, Iterator, List

import torch

#: ``.<name>.<pid>.<8 hex>.tmp``: the temporary names of this module.
_TEMP_NAME = re.compile(r'^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$')


def temporary_name(path: str) -> str:
    """A fresh temporary path beside ``path`` (same folder, hidden).

    Returns:
        str: The temporary path.
    """
    folder = osp.dirname(osp.abspath(path))
    return osp.join(folder, f'.{osp.basename(path)}.{os.getpid()}.'
                    f'{uuid.uuid4().hex[:8]}.tmp')


@contextlib.contextmanager
def atomic_target(path: str) -> Iterator[str]:
    """Yield a temporary path to write ``path``'s content to; on a normal
    exit it is ``fsync``-ed and renamed to ``path``, on an exception it is
    removed and ``path`` is untouched.

    Args:
        path (str): The final file name (its folder is created if needed).

    Yields:
        The temporary path (the caller creates and writes it).
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        if osp.lexists(tmp):
            os.remove(tmp)
        raise
    fsync_folder(folder)


def save_atomic(obj: Any, path: str) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically (see module docstring).

    The file gets the permissions a plain ``open(path, 'wb')`` would give
    (``0o666`` minus the umask; ``tempfile.mkstemp`` would give ``0o600``).

    Args:
        obj (Any): What ``torch.save`` writes.
        path (str): The final file name.
    """
    with atomic_target(path) as tmp:
        # mode 0o666 through os.open: the kernel applies the umask
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)


def write_text_atomic(path: str, text: str) -> None:
    """Replace the text file ``path`` atomically (e.g. ``last_checkpoint``).

    Args:
        path (str): The final file name.
        text (str): Its new content.
    """
    with atomic_target(path) as tmp:
        with open(tmp, 'x', encoding='utf-8') as f:
            f.write(text)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: str) -> None:
    """Persist renames and removals in ``folder`` (best effort: not every
    OS/filesystem lets a folder be opened or synced)."""
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


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def stale_temporaries(folder: str) -> List[str]:
    """The temporary files in ``folder`` left by writers that are dead.

    A file counts only if its name has this module's temporary form and the
    process id in it is not running on this machine (a live id may be a
    reused one: such a file is kept, which is the safe side).

    Args:
        folder (str): The folder to look into (a missing folder has none).

    Returns:
        Their full paths, sorted.
    """
    if not osp.isdir(folder):
        return []
    found = []
    for name in sorted(os.listdir(folder)):
        match = _TEMP_NAME.match(name)
        if match is None or int(match['pid']) == os.getpid():
            continue
        if not _process_alive(int(match['pid'])):
            found.append(osp.join(folder, name))
    return found


def remove_stale_temporaries(folder: str) -> List[str]:
    """Remove :func:`stale_temporaries` of ``folder``.

    Returns:
        The removed paths.
    """
    removed = []
    for path in stale_temporaries(folder):
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        removed.append(path)
    if removed:
        fsync_folder(folder)
    return removed
