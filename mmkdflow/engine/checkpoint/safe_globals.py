"""The allow-list that lets safe loading read MMEngine's own checkpoints.

torch >= 2.6 loads with ``weights_only=True`` by default, and MMEngine 0.10.7
calls ``torch.load`` without naming it, so resuming from MMEngine's own
checkpoints fails on the few non-tensor types they hold (``HistoryBuffer``
and numpy scalars/arrays of the message hub). :func:`allow_mmengine_types`
allow-lists exactly those types, and :func:`mmengine_types_allowed` does so
for mmkdflow's own reads only; safe loading itself stays on.

torch < 2.4 has no ``add_safe_globals`` (and before 2.6 ``torch.load``
unpickles anything unless told otherwise). There the same types are kept in
:data:`EXTRA_SAFE_GLOBALS`, and mmkdflow's loader
(:func:`mmkdflow.engine.checkpoint.loading.load_checkpoint_file`) reads files
with :class:`RestrictedUnpickler`: torch's own weights-only allow-list plus
these types, nothing else, so a file with pickled code is refused on the
floor of the supported range exactly as on its top.
"""
import _compat_pickle
import codecs
import collections
import contextlib
import functools
import pickle
from typing import Any, Dict, Iterator, List

import numpy as np
import torch


#: The two module names numpy's pickles give its array and scalar
#: constructors: ``numpy.core`` (numpy 1.x) and ``numpy._core`` (numpy 2.x).
NUMPY_CORE_NAMES = ('numpy.core.multiarray', 'numpy._core.multiarray')


def _numpy_globals() -> List[Any]:
    """The numpy callables and classes that pickled arrays/scalars name.

    ``_reconstruct`` and ``scalar`` are allowed under both module names of
    :data:`NUMPY_CORE_NAMES`, so a checkpoint written with numpy 1.x reads
    with numpy 2.x and the reverse. Both names resolve to the installed
    numpy's own functions (numpy 2 keeps ``numpy.core`` and numpy 1.26
    ships ``numpy._core`` as aliases of the same objects).
    """
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [type(np.dtype(t)) for t in (
        np.float64, np.float32, np.float16, np.int64, np.int32, np.int16,
        np.int8, np.uint64, np.uint32, np.uint16, np.uint8, np.bool_,
        np.complex64, np.complex128, np.str_, np.bytes_)]
    spelled = [(obj, f'{module}.{obj.__name__}')
               for module in NUMPY_CORE_NAMES
               for obj in (_reconstruct, scalar)]
    return [np.ndarray, np.dtype, *dtype_classes, *spelled]


def history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``getattr`` inside safe loading, restricted to what
    MMEngine pickles.

    ``HistoryBuffer.__getstate__`` stores its statistics methods
    (``HistoryBuffer.min`` ...), which pickle writes as
    ``getattr(HistoryBuffer, 'min')``. Any other use is refused, so the
    allow-list cannot be turned into arbitrary attribute access.

    Args:
        obj (Any): The object pickle asks an attribute of.
        name (str): The attribute name.

    Returns:
        The registered statistics method.

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


def _mmengine_globals() -> List[Any]:
    """The entries of the allow-list: types or ``(callable, name)``."""
    from mmengine.logging import HistoryBuffer
    HistoryBuffer()  # registers the default statistics methods
    return [HistoryBuffer, (history_buffer_getattr, 'builtins.getattr'),
            *_numpy_globals()]


#: ``'module.name' -> object`` of the allow-list, for torch < 2.4 (filled by
#: :func:`allow_mmengine_types`).
EXTRA_SAFE_GLOBALS: Dict[str, Any] = {}


def has_add_safe_globals() -> bool:
    """Whether this torch extends its weights-only allow-list (>= 2.4).

    Returns:
        bool: Whether ``torch.serialization.add_safe_globals`` exists.
    """
    return hasattr(torch.serialization, 'add_safe_globals')


def allow_mmengine_types() -> None:
    """Allow-list the types that MMEngine writes into its checkpoints for
    ``torch.load(weights_only=True)`` (idempotent): ``HistoryBuffer``, its
    statistics methods (through :func:`history_buffer_getattr`) and numpy
    arrays, scalars and dtypes.

    On torch < 2.4 the entries go to :data:`EXTRA_SAFE_GLOBALS`, which
    :class:`RestrictedUnpickler` reads."""
    entries = _mmengine_globals()
    if has_add_safe_globals():
        torch.serialization.add_safe_globals(entries)
        return
    # pickle protocol 2 writes bytes (numpy scalars' data) as
    # ``_codecs.encode(str, 'latin1')``; torch >= 2.4 allows it itself
    entries.append((codecs.encode, '_codecs.encode'))
    # plain containers and numbers torch >= 2.4 allows itself; MMEngine's
    # runner writes a Counter (the dataset's label counts) into its meta
    entries += [(bytearray, 'builtins.bytearray'),
                (complex, 'builtins.complex'), (set, 'builtins.set'),
                (collections.Counter, 'collections.Counter')]
    for entry in entries:
        obj, name = entry if isinstance(entry, tuple) else \
            (entry, f'{entry.__module__}.{entry.__qualname__}')
        EXTRA_SAFE_GLOBALS[name] = obj


@contextlib.contextmanager
def mmengine_types_allowed() -> Iterator[None]:
    """Allow MMEngine's checkpoint types inside the block only (torch >=
    2.5: ``torch.serialization.safe_globals``), so that other callers of
    ``torch.load`` in the process keep torch's own allow-list. torch 2.4
    has no such context: there the entries are added for the process, as
    :func:`allow_mmengine_types` does; below 2.4 they go to
    :data:`EXTRA_SAFE_GLOBALS`, read by :class:`RestrictedUnpickler`."""
    scoped = getattr(torch.serialization, 'safe_globals', None)
    if scoped is None:
        allow_mmengine_types()
        yield
        return
    with scoped(_mmengine_globals()):
        yield


@functools.lru_cache(maxsize=1)
def _torch_safe_globals() -> Dict[str, Any]:
    """torch's own weights-only allow-list (tensors, storages, dtypes,
    ``OrderedDict``, ...), as ``'module.name' -> object``."""
    from torch import _weights_only_unpickler
    return dict(_weights_only_unpickler._get_allowed_globals())


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals (the
    restriction pattern of Python's ``pickle`` documentation).

    Every callable or class a pickle can reach goes through
    :meth:`find_class`, so the objects it can build are torch's weights-only
    set and :data:`EXTRA_SAFE_GLOBALS`. Used by the loader on torch < 2.4,
    where ``torch.serialization.add_safe_globals`` does not exist.
    """

    def find_class(self, module: str, name: str) -> Any:
        # protocol < 3 names (``__builtin__``, ``copy_reg``), mapped to
        # Python 3 as pickle.Unpickler does
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        key = f'{module}.{name}'
        allowed = _torch_safe_globals()
        if key in allowed:
            return allowed[key]
        if key in EXTRA_SAFE_GLOBALS:
            return EXTRA_SAFE_GLOBALS[key]
        raise pickle.UnpicklingError(
            f'Unsupported global: GLOBAL {key} was not an allowed global')


class restricted_pickle:  # noqa: N801  a module-like namespace for torch
    """What ``torch.load(pickle_module=...)`` needs: ``Unpickler`` (the
    restricted one), ``load`` and the error type."""
    Unpickler = RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError
    __name__ = 'mmkdflow.restricted_pickle'

    @staticmethod
    def load(file, **kwargs) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()
