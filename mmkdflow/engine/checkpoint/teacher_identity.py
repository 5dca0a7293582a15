"""Training checkpoints without the frozen teacher, and the check on
loading that the teacher is still the one the checkpoint was written with.

A frozen teacher loaded from ``teacher_ckpt`` is the same in every
checkpoint of a run and is rebuilt from ``teacher_ckpt`` at every build, so
the distiller's ``state_dict`` leaves out its ``teacher.*`` entries and
holds instead :data:`IDENTITY_SHA256` (a SHA-256 of the teacher's state
dict as loaded, computed once at build) and :data:`IDENTITY_CKPT`
(``teacher_ckpt`` as given, UTF-8), both as ``uint8`` tensors so every
writer (MMEngine's ``CheckpointHook``, ``SafeCheckpointHook``) and safe
loading keep them. On loading (``--resume``, ``load_from``,
``load_state_dict``) the hashes are compared and the teacher's own weights
fill in its entries, so no ``teacher.*`` key is reported missing. A
checkpoint written before (teacher inside) loads as it always did.
"""
import hashlib
from typing import Mapping, Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log

from .loading import TEXT_ENTRIES

#: Prefix of the teacher's weights in the distiller's ``state_dict``.
TEACHER_PREFIX = 'teacher.'
#: ``state_dict`` entry: SHA-256 of the teacher's state dict as loaded, and
#: ``teacher_ckpt`` as given (UTF-8 bytes); text entries, whose shape the
#: key-by-key checks leave alone.
IDENTITY_SHA256, IDENTITY_CKPT = TEXT_ENTRIES


def state_dict_hash(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over the names, dtypes, shapes and bytes of
    ``state``, in key order.

    Returns:
        str: The hex digest.
    """
    digest = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        if not isinstance(value, torch.Tensor):
            digest.update(f'{key}={value!r};'.encode())
            continue
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f'{key}:{tensor.dtype}:{tuple(value.shape)};'
                      .encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _bytes_tensor(text: str) -> torch.Tensor:
    return torch.tensor(list(text.encode('utf-8')), dtype=torch.uint8)


def _text(tensor: torch.Tensor) -> str:
    return bytes(tensor.cpu().tolist()).decode('utf-8', 'replace')


def leaves_teacher_out(distiller: nn.Module) -> bool:
    """Whether the distiller's checkpoints leave the teacher out: it has a
    teacher loaded from ``teacher_ckpt`` (hashed at build) and every
    teacher parameter is still frozen. A random teacher
    (``allow_random_teacher=True``) cannot be rebuilt from anything, and a
    trained teacher changes during the run: both stay in the checkpoint.

    Returns:
        bool: Whether the checkpoints leave the teacher out.
    """
    teacher = getattr(distiller, 'teacher', None)
    return (teacher is not None and
            getattr(distiller, 'teacher_hash', None) is not None and
            not any(p.requires_grad for p in teacher.parameters()))


def drop_teacher_hook(module: nn.Module, state: dict, prefix: str,
                      local_metadata) -> None:
    """``state_dict`` hook of the distiller: the ``teacher.*`` entries
    out, the teacher's identity in (when :func:`leaves_teacher_out`)."""
    if not leaves_teacher_out(module):
        return
    for key in [k for k in state if k.startswith(prefix + TEACHER_PREFIX)]:
        del state[key]
    metadata = getattr(state, '_metadata', None)
    if metadata is not None:
        for key in [k for k in metadata
                    if k == prefix + 'teacher' or
                    k.startswith(prefix + TEACHER_PREFIX)]:
            del metadata[key]
    state[prefix + IDENTITY_SHA256] = _bytes_tensor(module.teacher_hash)
    state[prefix + IDENTITY_CKPT] = _bytes_tensor(str(module.teacher_ckpt))


def restore_teacher(distiller: nn.Module, state: dict, prefix: str) -> None:
    """Before the distiller loads ``state``: check a teacher-free
    checkpoint's teacher hash against this teacher's and fill in the
    teacher's entries from the teacher itself.

    Raises:
        ValueError: The hashes differ and ``allow_teacher_change`` is not
            set on the distiller.
    """
    sha_key, ckpt_key = prefix + IDENTITY_SHA256, prefix + IDENTITY_CKPT
    if sha_key not in state:
        return
    saved_hash = _text(state.pop(sha_key))
    saved_ckpt = _text(state.pop(ckpt_key)) if ckpt_key in state else '?'
    teacher = getattr(distiller, 'teacher', None)
    if teacher is None:
        return
    current: Optional[str] = distiller.teacher_hash
    if current != saved_hash:
        now = (f'sha256 {current} (teacher_ckpt={distiller.teacher_ckpt!r})'
               if current is not None else
               'a randomly initialised teacher (allow_random_teacher=True)')
        what = (f'the checkpoint was written with the teacher of sha256 '
                f'{saved_hash} (teacher_ckpt={saved_ckpt!r}), this model '
                f'has {now}')
        if not distiller.allow_teacher_change:
            raise ValueError(
                f'teacher changed: {what}. Point model.teacher_ckpt at the '
                f'teacher the run started with, or set '
                f'model.allow_teacher_change=True to continue with the new '
                f'teacher on purpose')
        print_log(f'allow_teacher_change=True: {what}; continuing with the '
                  f'new teacher', 'current', level=30)
    for key, value in teacher.state_dict().items():
        state.setdefault(prefix + TEACHER_PREFIX + key, value)
