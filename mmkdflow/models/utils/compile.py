"""``torch.compile`` options shared by FM-KT's velocity field and DiffKD's
denoiser: one normalisation of the ``compile`` setting and one compiled
function per ``(function, options)``, shared process-wide.

Nothing compiled is stored on a module, so ``deepcopy`` (an EMA), pickling
and ``state_dict`` are unaffected, and TorchDynamo's configuration is only
changed around the compiled calls themselves (see :func:`compiled`).
"""
import contextlib
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch

from mmkdflow.compat import require_torch

#: The lowest torch the compiled paths run on (see :func:`compile_options`).
COMPILE_MIN_TORCH = '2.6.0'
#: ``torch.compile`` options used for ``compile=True``.
DEFAULT_COMPILE_OPTIONS: Dict[str, Any] = dict(dynamic=False)
#: TorchDynamo's per-function graph limit inside the compiled calls: one
#: shared function serves every level shape in train and eval mode (5 FPN
#: levels x 2 modes already exceed torch's default of 8, past which it
#: would silently fall back to eager).
MIN_RECOMPILE_LIMIT = 64
CompileOption = Union[bool, Dict[str, Any], None]

_COMPILED: Dict[Tuple, Callable] = {}


def compile_options(option: CompileOption) -> Optional[Dict[str, Any]]:
    """Normalise a ``compile`` option: ``False``/``None`` -> ``None`` (no
    compilation), ``True`` -> :data:`DEFAULT_COMPILE_OPTIONS`, a dict ->
    those defaults updated with it (keyword arguments of
    :func:`torch.compile`, e.g. ``dict(mode='max-autotune')``).

    Returns:
        dict | None: The options of :func:`torch.compile`, or ``None``.

    Raises:
        TypeError: For anything else.
        RuntimeError: Compilation asked for on a torch older than
            :data:`COMPILE_MIN_TORCH`.
    """
    if option is None or option is False:
        return None
    if option is not True and not isinstance(option, dict):
        raise TypeError(f'compile must be a bool or a dict of torch.compile '
                        f'options, got {option!r}')
    require_torch(
        COMPILE_MIN_TORCH, 'compile=True',
        'TorchDynamo taking the modules passed to a compiled function as '
        "graph inputs; torch 2.1 fails with 'Detected that you are using FX "
        "to symbolically trace a dynamo-optimized function'; the compiled "
        'paths are tested from torch 2.6')
    return dict(DEFAULT_COMPILE_OPTIONS, **(option if isinstance(option, dict)
                                            else {}))


def _recompile_limit() -> contextlib.AbstractContextManager:
    """TorchDynamo's recompilation limit raised to
    :data:`MIN_RECOMPILE_LIMIT` for the duration of one call (the setting
    is ``recompile_limit`` from torch 2.6, ``cache_size_limit`` before)."""
    config = torch._dynamo.config
    name = 'recompile_limit' if hasattr(config, 'recompile_limit') \
        else 'cache_size_limit'
    current = getattr(config, name)
    if current >= MIN_RECOMPILE_LIMIT:
        return contextlib.nullcontext()
    return config.patch(**{name: MIN_RECOMPILE_LIMIT})


def compiled(fn: Callable, options: Dict[str, Any]) -> Callable:
    """``torch.compile(fn, **options)``, created once per ``(fn, options)``
    and shared process-wide; every call runs with the recompilation limit
    of :func:`_recompile_limit`, which is restored afterwards (other
    compiled code of the process keeps torch's setting).

    ``fn`` must be a module-level function that receives the modules it
    runs as arguments (not a bound method or closure): then one compiled
    function serves every instance, TorchDynamo treats the modules'
    parameters as graph inputs (``inline_inbuilt_nn_modules``), and no
    compiled state sits on a module (a deep copy, e.g. an EMA, would
    otherwise keep calling the original's weights).

    Returns:
        Callable: The compiled function.
    """
    key = (fn, tuple(sorted((k, repr(v)) for k, v in options.items())))
    out = _COMPILED.get(key)
    if out is None:
        graph = torch.compile(fn, **options)

        def out(*args: Any) -> Any:
            with _recompile_limit():
                return graph(*args)

        _COMPILED[key] = out
    return out
