r"""glibc ``malloc`` settings that stop a CPU training step from paying for
page faults.

Why: on CPU, torch takes every tensor's memory from ``malloc``. glibc serves
a request larger than its mmap threshold (128 KiB, raised dynamically up to
32 MiB) with a fresh anonymous ``mmap`` and gives it back with ``munmap``
on free; smaller freed blocks at the top of the heap are returned with
``sbrk`` once more than ``M_TRIM_THRESHOLD`` bytes are free there. A
training step allocates and frees the same large activations at every
step, so every step the kernel maps them again and zero-fills each page at
its first touch. A distillation step holds the student's, the teacher's
and the connector's activations at once, so it pays this more than a
student step (docs/results.md gives the measured cost).

What :func:`configure_allocator` sets, through ``mallopt(3)`` (``ctypes``):

* ``M_MMAP_MAX = 0``: no ``mmap`` for large blocks; they come from the heap
  and, once freed, are reused by the next step without faults;
* ``M_TRIM_THRESHOLD = -1``: never give the top of the heap back to the
  kernel (``mallopt(3)``: "-1 disables trimming completely").

The cost: the process keeps its peak heap mapped (the high-water mark of
one step, which the next step needs again anyway), and a long-lived
fragmented heap is not returned to the system. GPU training barely touches
``malloc``, so the settings change nothing there.

Switch: set ``MMKDFLOW_ALLOCATOR=off`` (or ``0``, ``false``, ``no``,
``default``) in the environment, or pass ``enabled=False`` (the tools'
``--no-allocator-tuning``). When the user already tunes glibc malloc
(``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``
or ``glibc.malloc`` in ``GLIBC_TUNABLES``), their settings are kept.
Nothing is done off Linux or on a C library other than glibc.

Use at the start of a tool, before the model is built::

    from mmkdflow.utils.allocator import configure_allocator
    configure_allocator()
"""
import argparse
import ctypes
import ctypes.util
import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional

#: Environment variable that turns the tuning off (``off``, ``0``, ...).
ENV_SWITCH = 'MMKDFLOW_ALLOCATOR'
OFF_VALUES = ('0', 'off', 'false', 'no', 'default')
#: glibc's own variables: when any is set, the user's choice is kept.
USER_MALLOC_ENV = ('MALLOC_MMAP_MAX_', 'MALLOC_TRIM_THRESHOLD_',
                   'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TOP_PAD_')

# <malloc.h> parameter numbers
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: What :func:`configure_allocator` sets (name -> (parameter, value)).
SETTINGS: Dict[str, tuple] = {
    'M_MMAP_MAX': (M_MMAP_MAX, 0),
    'M_TRIM_THRESHOLD': (M_TRIM_THRESHOLD, -1),
}


@dataclass
class AllocatorState:
    """The outcome of :func:`configure_allocator`.

    Attributes:
        applied: Whether the settings are in effect in this process.
        reason: Why (or why not), for logs and benchmark reports.
        settings: ``mallopt`` parameter name -> value, when applied.
    """

    applied: bool
    reason: str
    settings: Dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(applied=self.applied, reason=self.reason,
                    settings=dict(self.settings))


_STATE: Optional[AllocatorState] = None


def _glibc() -> Optional[ctypes.CDLL]:
    """The process's glibc, or ``None`` off Linux / on another libc."""
    if not sys.platform.startswith('linux'):
        return None
    if platform.libc_ver()[0] != 'glibc':
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    except OSError:
        return None
    return libc if hasattr(libc, 'mallopt') else None


def disabled_by_env(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether ``MMKDFLOW_ALLOCATOR`` turns the tuning off."""
    environ = os.environ if environ is None else environ
    return environ.get(ENV_SWITCH, '').strip().lower() in OFF_VALUES


def user_tunes_malloc(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether the environment already sets glibc malloc parameters."""
    environ = os.environ if environ is None else environ
    return any(k in environ for k in USER_MALLOC_ENV) or \
        'glibc.malloc.' in environ.get('GLIBC_TUNABLES', '')


def configure_allocator(enabled: Optional[bool] = None) -> AllocatorState:
    """Apply the glibc ``malloc`` settings of this module once per process.

    Args:
        enabled: ``False`` skips the tuning (the tools'
            ``--no-allocator-tuning``); ``None`` or ``True`` applies it
            unless ``MMKDFLOW_ALLOCATOR=off`` or the user's own glibc
            malloc variables say otherwise.

    Returns:
        An :class:`AllocatorState`. Calling again returns the first
        outcome when the settings were applied (they cannot be undone in
        a process); a skipped call can be followed by an applying one.

    Raises:
        RuntimeError: If glibc rejects a setting (``mallopt`` returned 0),
            naming it; set ``MMKDFLOW_ALLOCATOR=off`` to run without.
    """
    global _STATE
    if _STATE is not None and _STATE.applied:
        return _STATE
    if enabled is False:
        state = AllocatorState(False, 'turned off (--no-allocator-tuning)')
    elif disabled_by_env():
        state = AllocatorState(
            False, f'turned off ({ENV_SWITCH}='
            f'{os.environ[ENV_SWITCH]})')
    elif user_tunes_malloc():
        state = AllocatorState(
            False, 'kept the glibc malloc settings of the environment')
    else:
        libc = _glibc()
        if libc is None:
            state = AllocatorState(
                False, f'not glibc on Linux ({sys.platform}, '
                f'{platform.libc_ver()[0] or "unknown libc"}): nothing to do')
        else:
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            libc.mallopt.restype = ctypes.c_int
            for name, (param, value) in SETTINGS.items():
                if libc.mallopt(param, value) != 1:
                    raise RuntimeError(
                        f'glibc mallopt({name}, {value}) failed; set '
                        f'{ENV_SWITCH}=off to run with glibc defaults')
            state = AllocatorState(
                True, 'glibc mallopt: no mmap for large blocks, no trimming',
                {name: value for name, (_, value) in SETTINGS.items()})
    _STATE = state
    return state


def allocator_state() -> Optional[AllocatorState]:
    """The outcome of the last :func:`configure_allocator` call, if any."""
    return _STATE


def add_allocator_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--no-allocator-tuning`` to a tool's parser (read it with
    ``configure_allocator(enabled=not args.no_allocator_tuning)``)."""
    parser.add_argument(
        '--no-allocator-tuning', action='store_true',
        help='keep glibc malloc defaults (large blocks mmap-ed and returned '
        'to the kernel at every free); same as '
        f'{ENV_SWITCH}=off. See mmkdflow/utils/allocator.py')


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks',
        'fsmblks', 'uordblks', 'fordblks', 'keepcost')]


def mmapped_bytes() -> Optional[int]:
    """Bytes glibc currently holds in ``mmap``-ed blocks (``mallinfo2``'s
    ``hblkhd``), or ``None`` without glibc >= 2.33. With the tuning on, a
    large tensor adds nothing here."""
    libc = _glibc()
    if libc is None or not hasattr(libc, 'mallinfo2'):
        return None
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().hblkhd)
