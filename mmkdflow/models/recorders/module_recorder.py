"""Capture the outputs of named submodules with forward hooks."""
import difflib
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

import torch.nn as nn

OutputTransform = Callable[[Any], Any]


def resolve_module(model: nn.Module, path: str, role: str) -> nn.Module:
    """Return ``model``'s submodule at the dotted ``path``.

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


class ModuleOutputRecorder:
    """Records the outputs of submodules of one model.

    Hooks are registered once, at construction, and stay passive (a dict
    lookup) unless the recorder is inside :meth:`recording`, so a model used
    outside the distiller behaves as a plain model. A transform may be set
    per path: inside :meth:`recording` the hook then returns the transformed
    output, which replaces the module's output for the rest of the forward.

    Each call of a module during one recording is kept; a module called
    once yields its output, a module called k times (e.g. a head shared by
    FPN levels) yields the tuple of its k outputs.

    The hooks hold only a weak reference to the recorder; :meth:`remove`
    (also run when the recorder is garbage-collected) detaches them.

    Args:
        model: The model whose submodules are recorded.
        paths: Dotted module paths.
        role: ``'student'`` or ``'teacher'``, for error messages.
    """

    def __init__(self, model: nn.Module, paths: Iterable[str],
                 role: str) -> None:
        self.role = role
        self.paths: List[str] = list(dict.fromkeys(paths))
        self.modules: Dict[str, nn.Module] = {
            path: resolve_module(model, path, role) for path in self.paths
        }
        self._outputs: Dict[str, List[Any]] = {p: [] for p in self.paths}
        self._transforms: Dict[str, OutputTransform] = {}
        self._depth = 0
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
            if recorder is None or recorder._depth == 0:
                return None
            transform = recorder._transforms.get(path)
            if transform is not None:
                output = transform(output)
            recorder._outputs[path].append(output)
            return output if transform is not None else None

        return hook

    def set_transform(self, path: str,
                      transform: Optional[OutputTransform]) -> None:
        """Replace the output of ``path`` by ``transform(output)`` while
        recording (``None`` removes the transform)."""
        if path not in self.modules:
            raise KeyError(f'{self.role} recorder does not hook {path!r}')
        if transform is None:
            self._transforms.pop(path, None)
        else:
            self._transforms[path] = transform

    @contextmanager
    def recording(self) -> Iterator['ModuleOutputRecorder']:
        """Record (and transform) module outputs inside the block.

        Entering the outermost block forgets earlier outputs; nested blocks
        (a forward that calls itself) share the same record.
        """
        if self._depth == 0:
            self.clear()
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1

    def get(self, path: str) -> Any:
        """The recorded output of ``path`` in the last recording.

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

    def clear(self) -> None:
        """Forget all recorded outputs."""
        for calls in self._outputs.values():
            calls.clear()

    def remove(self) -> None:
        """Detach every hook from the model."""
        self._finalizer()
        self.clear()

    @property
    def active_hooks(self) -> int:
        """Number of hooks still attached."""
        return sum(
            1 for path, module in self.modules.items()
            for handle in self._handles
            if handle.id in module._forward_hooks)


def _remove_handles(handles: List[Any]) -> None:
    for handle in handles:
        handle.remove()
