"""Checkpoints of a distillation run, from writing to reading.

The life of a checkpoint, in order:

1. **Layout** (:mod:`.layout`). A distiller checkpoint is MMEngine's, with
   the student, the connectors, their EMA and the random states. A frozen
   teacher is left out and replaced by its identity (:mod:`.teacher_identity`):
   ``teacher_ckpt`` and a SHA-256 of its weights.
2. **Writing** (:mod:`.atomic_files`). Every file goes to a temporary name,
   is flushed, then renamed, so a crash never leaves half a file.
3. **Rotating** (:mod:`.safe_checkpoint_hook`). :class:`SafeCheckpointHook`
   deletes old checkpoints only after the new one is complete.
4. **Finding** (:func:`find_resume_checkpoint`). ``--resume`` takes the work
   dir's newest complete checkpoint, its own files first.
5. **Reading** (:mod:`.loading`, :mod:`.safe_globals`). Files load with
   ``weights_only=True`` and a short allow-list of MMEngine's types;
   anything else is refused with a message naming the file and the fix.
   :class:`safe_mmengine_loaders` (:mod:`.mmengine_loading`) makes
   MMEngine's own reads (``resume``, ``load_from``) do the same, for the
   runs whose config asks for it.
6. **Resuming** (:mod:`.resume_state_hook`, :mod:`.resumable_loop`).
   :class:`ResumeStateHook` restores the random states and checks the
   weights key by key; the resumable loops continue inside an epoch, at the
   next batch. The teacher is checked against its identity on loading.
"""
from .atomic_files import save_atomic, write_text_atomic
from .layout import deploy_checkpoint, student_checkpoint
from .loading import (CheckpointError, check_checkpoint_file,
                      extract_state_dict, load_checkpoint_file,
                      load_weights_strictly)
from .mmengine_loading import safe_mmengine_loaders
from .resumable_loop import (ResumableEpochBasedTrainLoop,
                             ResumableIterBasedTrainLoop, make_resumable)
from .resume_state_hook import ResumeStateHook
from .safe_checkpoint_hook import (SafeCheckpointHook, find_resume_checkpoint,
                                   resumable_checkpoints)
from .safe_globals import allow_mmengine_types
from .teacher_identity import restore_teacher, state_dict_hash

__all__ = [
    'CheckpointError', 'ResumableEpochBasedTrainLoop',
    'ResumableIterBasedTrainLoop', 'ResumeStateHook', 'SafeCheckpointHook',
    'allow_mmengine_types', 'check_checkpoint_file', 'deploy_checkpoint',
    'extract_state_dict', 'find_resume_checkpoint', 'load_checkpoint_file',
    'load_weights_strictly', 'make_resumable', 'restore_teacher',
    'resumable_checkpoints', 'safe_mmengine_loaders', 'save_atomic',
    'state_dict_hash', 'student_checkpoint', 'write_text_atomic'
]
