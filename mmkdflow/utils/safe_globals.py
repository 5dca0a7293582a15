"""The allow-list that lets safe loading read MMEngine's own checkpoints.

torch >= 2.6 loads with ``weights_only=True`` by default, and MMEngine 0.10.7
calls ``torch.load`` without naming it, so resuming from MMEngine's own
checkpoints fails on the few non-tensor types they hold (``HistoryBuffer``
and numpy scalars/arrays of the message hub). :func:`allow_mmengine_types`
allow-lists exactly those types; safe loading itself stays on, for every
caller of ``torch.load`` in the process.
"""
import pickle
from typing import Any, List

import numpy as np
import torch


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
    MMEngine pickles.

    ``HistoryBuffer.__getstate__`` stores its statistics methods
    (``HistoryBuffer.min`` ...), which pickle writes as
    ``getattr(HistoryBuffer, 'min')``. Any other use is refused, so the
    allow-list cannot be turned into arbitrary attribute access.

    Args:
        obj: The object pickle asks an attribute of.
        name: The attribute name.

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
