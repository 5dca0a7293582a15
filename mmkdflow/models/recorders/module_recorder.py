"""Capture the outputs of named submodules with forward hooks."""
import difflib
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

import torch.nn as nn

#: ``fn(output, record) -> replacement`` for one module's output.
Replacer = Callable[[Any, 'Recording'], Any]


def resolve_module(model: nn.Module, path: str, role: str) -> nn.Module:
    """Return ``model``'s submodule at the dotted ``path``.

    Returns:
        nn.Module: The submodule.

    Raises:
        ValueError: If the path does not exist; the message names the path
            and the closest existing module paths.
    """
    if not isinstance(path, str) or not path:
        raise ValueError(
            f'{role} module path must be a non-empty dotted string such as '
            f"'neck' or 'decode_head.conv_seg', got {path!r}")
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = [name for name, _ in model.named_modules() if name]
        close = difflib.get_close_matches(path, names, n=5, cutoff=0.5)
        if not close:
            close = sorted({name.split('.')[0] for name in names})[:8]
        raise ValueError(
            f"{role} ({type(model).__name__}) has no module '{path}'. "
            f"Close matches: {', '.join(close)}") from None


class Recording:
    """The module outputs recorded during one
    ``with recorder.recording(...)`` block.

    Each call of a module is kept; a module called once yields its output,
    a module called k times (e.g. a head shared by FPN levels) yields the
    tuple of its k outputs. The record belongs to the caller: once the block
    is left the recorder keeps no reference to it.

    Args:
        role (str): ``'student'`` or ``'teacher'``, for error messages.
        paths (Iterable[str]): The recorded module paths.
        replacers (dict, optional): ``{path: fn}``: the output of ``path`` is
            replaced by ``fn(output, record)`` for the rest of the forward
            (``record`` is this object, so ``fn`` can read modules recorded
            earlier). Defaults to None.
    """

    def __init__(self, role: str, paths: Iterable[str],
                 replacers: Optional[Dict[str, Replacer]] = None) -> None:
        self.role = role
        self._outputs: Dict[str, List[Any]] = {p: [] for p in paths}
        self._replacers = dict(replacers or {})

    def add(self, path: str, output: Any) -> Any:
        """Keep one output of ``path``; return its replacement, or ``None``
        to leave the module's output as it is (a forward hook's return).

        Returns:
            Any: The replacement output, or ``None``.
        """
        replace = self._replacers.get(path)
        if replace is not None:
            output = replace(output, self)
        self._outputs[path].append(output)
        return output if replace is not None else None

    def get(self, path: str) -> Any:
        """The recorded (replaced, if a replacer is set) output of ``path``.

        Returns:
            Any: The recorded output.

        Raises:
            RuntimeError: If the module did not run during the recording
                (e.g. the teacher ran only ``extract_feat`` but a head
                output was requested).
        """
        calls = self._outputs[path]
        if not calls:
            raise RuntimeError(
                f"{self.role} module '{path}' did not run in the last forward;"
                f' check the module path, or for the teacher set '
                f"teacher_forward='tensor' so that its head runs too")
        return calls[0] if len(calls) == 1 else tuple(calls)


class ModuleOutputRecorder:
    """Records the outputs of submodules of one model.

    Hooks are registered once, at construction, and stay passive (a list
    check) unless the recorder is inside :meth:`recording`, so a model used
    outside the distiller behaves as a plain model. Each
    :meth:`recording` block gets its own :class:`Recording`; nested blocks
    (a forward run inside another one) record into the innermost block
    only, so neither sees the other's outputs.

    The hooks hold only a weak reference to the recorder; :meth:`remove`
    (also run when the recorder is garbage-collected) detaches them.

    Args:
        model (nn.Module): The model whose submodules are recorded.
        paths (Iterable[str]): Dotted module paths.
        role (str): ``'student'`` or ``'teacher'``, for error messages.
    """

    def __init__(self, model: nn.Module, paths: Iterable[str],
                 role: str) -> None:
        self.role = role
        self.paths: List[str] = list(dict.fromkeys(paths))
        self.modules: Dict[str, nn.Module] = {
            path: resolve_module(model, path, role) for path in self.paths
        }
        self._active: List[Recording] = []
        handles = [
            module.register_forward_hook(self._make_hook(path))
            for path, module in self.modules.items()
        ]
        self._handles = handles
        self._finalizer = weakref.finalize(self, _remove_handles, handles)

    def _make_hook(self, path: str) -> Callable:
        recorder_ref = weakref.ref(self)

        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            recorder = recorder_ref()
            if recorder is None or not recorder._active:
                return None
            return recorder._active[-1].add(path, output)

        return hook

    @contextmanager
    def recording(self, replacers: Optional[Dict[str, Replacer]] = None
                  ) -> Iterator[Recording]:
        """Record (and replace) module outputs inside the block.

        Args:
            replacers (dict, optional): ``{path: fn(output, record) -> new
                output}`` for hooked paths whose output is replaced in this
                block. Defaults to None.

        Yields:
            The block's :class:`Recording`.

        Raises:
            KeyError: For a replacer of a path the recorder does not hook.
        """
        unknown = set(replacers or {}) - set(self.modules)
        if unknown:
            raise KeyError(f'{self.role} recorder does not hook '
                           f'{sorted(unknown)}')
        record = Recording(self.role, self.paths, replacers)
        self._active.append(record)
        try:
            yield record
        finally:
            self._active.remove(record)

    def remove(self) -> None:
        """Detach every hook from the model."""
        self._finalizer()


def _remove_handles(handles: List[Any]) -> None:
    for handle in handles:
        handle.remove()
