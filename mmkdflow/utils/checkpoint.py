"""Checkpoint utilities, split by job (this module re-exports them):

* :mod:`~mmkdflow.utils.safe_globals`: the allow-list that lets safe
  loading (``weights_only=True``) read MMEngine's own checkpoints;
* :mod:`~mmkdflow.utils.checkpoint_loading`: loading on CPU with safe
  loading, mmkdflow's errors for refused, truncated, missing, remote or
  directory paths, key-by-key weight checks;
* :mod:`~mmkdflow.utils.atomic_files`: atomic writing (temporary file,
  ``fsync``, rename) and the clean-up of temporaries left by killed writers.

Saving MMEngine checkpoints atomically is explicit, not an import side
effect. Earlier versions replaced ``mmengine.runner.save_checkpoint`` when
``mmkdflow`` was imported. That patch is gone, for three reasons:

1. Atomic writes alone do not keep a run safe: MMEngine's ``CheckpointHook``
   deletes the oldest checkpoint *before* writing the new one and writes
   ``last_checkpoint`` in place, so a kill during a save still lost the only
   checkpoint with ``max_keep_ckpts=1``. Safe rotation needs a hook anyway
   (:class:`mmkdflow.engine.SafeCheckpointHook`), and that hook writes each
   checkpoint under a temporary name and renames it, so one place owns the
   whole on-disk protocol (names, order of write/rename/delete,
   ``last_checkpoint``, clean-up).
2. Importing a library should not change what another library does in the
   same process: a process that imported ``mmkdflow`` for a loss changed
   every MMEngine save, and tests had to uninstall the patch to see
   MMEngine's behaviour.
3. The patch had to find every module holding a reference to
   ``save_checkpoint`` (three in MMEngine 0.10.7); a new MMEngine could add
   one silently.

``tools/train.py`` installs the hook (``default_hooks.checkpoint`` becomes a
``SafeCheckpointHook`` with the same arguments); a run started otherwise
opts in with ``default_hooks = dict(checkpoint=dict(
type='mmkdflow.SafeCheckpointHook'))`` in its config.

One import side effect remains, on purpose: ``import mmkdflow`` calls
:func:`~mmkdflow.utils.safe_globals.allow_mmengine_types`. It only *adds*
MMEngine's own checkpoint types (``HistoryBuffer``, numpy scalars) to
torch's safe-loading allow-list, so it changes no other library's
behaviour and refuses nothing that loaded before; and it has to be in place
before MMEngine's ``Runner.resume`` / ``load_from`` run, which a config
reaching mmkdflow only through ``custom_imports`` cannot arrange otherwise.

The on-disk layout of mmkdflow's own checkpoints (student, deploy, EMA and
random-state entries) is owned by :mod:`mmkdflow.engine.checkpoint_layout`.
"""
from .atomic_files import (atomic_target, remove_stale_temporaries,
                           save_atomic, stale_temporaries, write_text_atomic)
from .checkpoint_loading import (CheckpointError, check_checkpoint_file,
                                 extract_state_dict, fetch_url,
                                 hub_cache_path, is_remote,
                                 load_checkpoint_file, load_weights_strictly,
                                 refusal_error, state_dict_mismatch)
from .safe_globals import allow_mmengine_types, history_buffer_getattr

__all__ = [
    'CheckpointError', 'allow_mmengine_types', 'atomic_target',
    'check_checkpoint_file', 'extract_state_dict', 'fetch_url',
    'history_buffer_getattr', 'hub_cache_path', 'is_remote',
    'load_checkpoint_file', 'load_weights_strictly', 'refusal_error',
    'remove_stale_temporaries', 'save_atomic', 'stale_temporaries',
    'state_dict_mismatch', 'write_text_atomic'
]
