"""Read the arguments a ``Runner`` was built with, in one place.

MMEngine 0.10.7 keeps ``Runner(resume=..., randomness=...)`` in private
attributes and has no public accessor for them. A runner built with
:meth:`~mmengine.runner.Runner.from_cfg` (``tools/train.py``) also holds
them in its config, ``runner.cfg``, which is public; a runner built
directly (``Runner(model=..., resume=True)``) keeps an empty config. The
functions below read the config first and fall back to the private
attribute only for such runners, so the hooks never read private runner
state themselves. The train loop before it is built and the checkpoint to
load exist only as private attributes; their accessors are here too. The
validation loop needs no accessor: use the public ``runner.val_loop``
(``None`` when the config has no validation).
"""
from typing import Any, Dict


def _runner_argument(runner, name: str, private: str, default: Any) -> Any:
    cfg = getattr(runner, 'cfg', None)
    if cfg is not None and name in cfg:
        return cfg[name]
    return getattr(runner, private, default)


def is_resuming(runner) -> bool:
    """Whether the runner resumes a run (``resume=True``), as opposed to
    starting one, possibly from ``load_from`` weights (fine-tuning).

    Returns:
        bool: Whether the runner resumes a run.
    """
    return bool(_runner_argument(runner, 'resume', '_resume', False))


def randomness_args(runner) -> Dict[str, Any]:
    """The runner's ``randomness`` arguments (``seed``, ``diff_rank_seed``,
    ``deterministic``); empty when none were given.

    Returns:
        dict[str, Any]: The ``randomness`` arguments.
    """
    return dict(_runner_argument(runner, 'randomness', '_randomness_cfg',
                                 None) or {})


def built_train_loop(runner) -> Any:
    """The runner's train loop if it is built (a ``BaseLoop`` during
    ``runner.train()``), else its config dict or ``None``; unlike the
    public ``runner.train_loop`` this never builds it.

    Returns:
        Any: The train loop, its config or ``None``.
    """
    return getattr(runner, '_train_loop', None)


def checkpoint_to_load(runner) -> Any:
    """The file ``runner.load_or_resume()`` will read (``load_from``, or
    the resume checkpoint), ``None`` when none is named.

    Returns:
        str | None: The checkpoint's path, or ``None``.
    """
    return getattr(runner, '_load_from', None)


def set_checkpoint_to_load(runner, path: str) -> None:
    """Name the file ``runner.load_or_resume()`` reads; MMEngine 0.10.7 has
    no public setter, and reads ``_load_from`` after ``before_run``."""
    runner._load_from = path
