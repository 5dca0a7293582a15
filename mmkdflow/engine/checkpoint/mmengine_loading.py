"""Safe loading for MMEngine's own checkpoint reads (``load_from``,
``resume``, pretrained weights of ``init_cfg``), for the runs that ask.

MMEngine 0.10.7 reads local files and ``http(s)`` URLs with a bare
``torch.load``: on torch >= 2.6 that is weights-only (and refuses with
torch's advice to turn safe loading off), on torch < 2.6 (the floor of
mmkdflow's range) it unpickles anything, so a checkpoint with pickled code
would run it when a plain ``Runner`` resumes from it. A run whose config
has ``mmkdflow.SafeTrainingHook`` (``_base_/default_runtime_distill.py``)
reads them through mmkdflow's loader, registered with MMEngine's public
extension point (``CheckpointLoader.register_scheme``) while the run loads
its weights and removed before training starts. Every torch of the range
then loads MMEngine's checkpoints the same way: weights-only with
MMEngine's few types allow-listed (:mod:`.safe_globals`), a refusal in
mmkdflow's words (:func:`~.loading.refusal_error`). MMEngine's other
schemes (``open-mmlab://``, ``torchvision://``, ``s3://``, ...) are left
as they are.
"""
import os.path as osp
from typing import Any, Optional

from .loading import _check_is_file, _weights_only_load, fetch_url

#: What MMEngine passes as ``map_location``: None, a device string, a
#: callable or a dict, handed on to ``torch.load``.
MapLocation = Any


def load_local(filename: str, map_location: MapLocation = None):
    """MMEngine's ``load_from_local`` with safe loading.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        FileNotFoundError: The file does not exist.
        CheckpointError: Unreadable, or refused by safe loading.
    """
    filename = osp.expanduser(filename)
    _check_is_file(filename, 'checkpoint')
    return _weights_only_load(filename, 'checkpoint',
                              map_location=map_location)


def load_http(filename: str, map_location: MapLocation = None,
              model_dir: Optional[str] = None):
    """MMEngine's ``load_from_http`` with safe loading: rank 0 downloads
    into the torch hub cache first, the other ranks then read the cached
    file (``model_dir`` is accepted for MMEngine's signature; the file goes
    where torch's hub keeps it, as for ``teacher_ckpt``).

    Returns:
        dict: The loaded checkpoint.
    """
    from mmengine.dist import barrier, get_dist_info
    rank, world_size = get_dist_info()
    fix = 'set load_from / --resume to a local file path'
    if rank == 0:
        local = fetch_url(filename, f'checkpoint {filename!r}', fix)
    if world_size > 1:
        barrier()
    if rank != 0:
        local = fetch_url(filename, f'checkpoint {filename!r}', fix)
    return _weights_only_load(local, 'checkpoint',
                              map_location=map_location)


#: The schemes :func:`safe_mmengine_loaders` replaces.
SAFE_SCHEMES = ('', 'http://', 'https://')


class safe_mmengine_loaders:  # noqa: N801  used like a context manager
    """Route MMEngine's local and ``http(s)`` checkpoint reads through
    :func:`load_local` / :func:`load_http` between :meth:`install` and
    :meth:`restore` (``SafeTrainingHook`` does so around a run's loading
    of ``load_from``, the resume checkpoint and pretrained weights).

    MMEngine's loaders of those schemes are put back by :meth:`restore`;
    its other schemes are never touched. ``import mmkdflow`` changes none.
    """

    def __init__(self) -> None:
        self._saved = None

    def install(self) -> None:
        """Register mmkdflow's loaders (a second call does nothing)."""
        from mmengine.runner.checkpoint import CheckpointLoader
        if self._saved is not None:
            return
        # MMEngine 0.10.7 has no public read of a registered loader
        schemes = CheckpointLoader._schemes
        self._saved = {prefix: schemes.get(prefix) for prefix in SAFE_SCHEMES}
        CheckpointLoader.register_scheme('', load_local, force=True)
        CheckpointLoader.register_scheme(('http://', 'https://'), load_http,
                                         force=True)

    def restore(self) -> None:
        """Put MMEngine's loaders back (nothing when none is installed)."""
        from mmengine.runner.checkpoint import CheckpointLoader
        if self._saved is None:
            return
        for prefix, loader in self._saved.items():
            if loader is None:
                CheckpointLoader._schemes.pop(prefix, None)
            else:
                CheckpointLoader.register_scheme(prefix, loader, force=True)
        self._saved = None

    def __enter__(self) -> 'safe_mmengine_loaders':
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()
