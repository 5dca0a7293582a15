"""Checkpoint rotation that never leaves a run without a checkpoint.

MMEngine 0.10.7's ``CheckpointHook`` deletes the oldest checkpoint before it
writes the new one, writes the new one in place and rewrites
``last_checkpoint`` in place: a kill during a save with ``max_keep_ckpts=1``
leaves no checkpoint at all and a ``last_checkpoint`` naming a deleted file.
:class:`SafeCheckpointHook` keeps MMEngine's arguments and file names and
changes only the order on disk:

1. the new checkpoint is written under a temporary name, ``fsync``-ed and
   renamed into place;
2. ``last_checkpoint`` is replaced atomically, naming it;
3. only then the checkpoint that falls out of ``max_keep_ckpts`` (and its
   companions such as ``epoch_N_student.pth``) is deleted.

A kill at any moment thus leaves the previous checkpoint, the new one, or
both, always complete, and ``last_checkpoint`` names a complete one.
Temporary files of a killed save are removed at the next start
(``before_train``). :func:`find_resume_checkpoint` is the reader's side:
what ``--resume`` picks when ``last_checkpoint`` is missing or names a file
that is gone or damaged.
"""
import contextlib
import logging
import os
import os.path as osp
import re
from typing import Iterator, List, Optional, Sequence, Tuple

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

from mmkdflow.registry import HOOKS
from .atomic_files import (atomic_target, fsync_folder,
                           remove_stale_temporaries, write_text_atomic)
from .loading import CheckpointError, check_checkpoint_file

#: The names of the checkpoints a run can be resumed from
#: (``CheckpointHook``'s default ``filename_tmpl`` by epoch and by iteration).
RESUMABLE_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook`` with safe rotation and atomic writes.

    Same arguments and behaviour as :class:`mmengine.hooks.CheckpointHook`
    (``interval``, ``by_epoch``, ``max_keep_ckpts``, ``save_best``,
    ``published_keys`` ...), plus:

    Args:
        companion_suffixes (Sequence[str]): Files ``<stem><suffix>.pth``
            written beside a checkpoint by other hooks
            (``StudentCheckpointHook`` writes ``_student``), deleted together
            with their checkpoint when it falls out of ``max_keep_ckpts``.
            Defaults to ('_student',).
        *args, **kwargs: Those of ``CheckpointHook``.

    Local folders get the full protocol of the module docstring (best
    checkpoints, ``save_best``, are written atomically too, but MMEngine's
    order of deleting the previous best first is kept: the regular
    checkpoints still cover that moment). Remote backends (``s3://`` ...)
    have no atomic rename, so there the checkpoint is written in place, but
    the old one is still deleted only after the new one is written.
    Published checkpoints (``published_keys``) are written by MMEngine as
    before.
    """

    def __init__(self, *args,
                 companion_suffixes: Sequence[str] = ('_student', ),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.companion_suffixes = tuple(companion_suffixes)
        self._check_settings()

    @classmethod
    def adopt(cls, hook: CheckpointHook,
              companion_suffixes: Sequence[str] = ('_student', )) -> None:
        """Turn a built MMEngine ``CheckpointHook`` into this hook in
        place, keeping its settings, with the same checks as ``__init__``.

        Args:
            hook (CheckpointHook): A hook of exactly MMEngine's class.
            companion_suffixes (Sequence[str]): As in ``__init__``.
                Defaults to ``('_student', )``.
        """
        hook.__class__ = cls
        hook.companion_suffixes = tuple(companion_suffixes)
        hook._check_settings()

    def _check_settings(self) -> None:
        """Refuse the settings whose rotation would lose checkpoints."""
        if self.interval == 0:
            raise ValueError(
                'SafeCheckpointHook: interval=0 would never save a '
                'checkpoint; give interval >= 1 (epochs or iterations '
                'between checkpoints), or -1 to save only the last one')
        if self.max_keep_ckpts == 0:
            raise ValueError(
                'SafeCheckpointHook: max_keep_ckpts=0 is ambiguous (MMEngine '
                'reads it as "keep all"); give max_keep_ckpts >= 1 to keep '
                'that many, or -1 to keep all')

    # ------------------------------------------------------------ start
    def before_train(self, runner) -> None:
        """MMEngine's set-up, then remove temporaries of killed saves."""
        super().before_train(runner)
        if not (is_main_process() and self._local):
            return
        folders = {self.out_dir, runner.work_dir}
        for folder in sorted(folders):
            for path in remove_stale_temporaries(folder):
                runner.logger.info(f'removed {path}: the temporary file of a '
                                   f'save that was interrupted')

    @property
    def _local(self) -> bool:
        return isinstance(getattr(self, 'file_backend', None), LocalBackend)

    # ------------------------------------------------------------ saving
    @contextlib.contextmanager
    def _atomic_saves(self, runner) -> Iterator[None]:
        """Within the block, ``runner.save_checkpoint`` writes local files
        under a temporary name and renames them into place (a wrapper on
        this runner object only, removed on exit)."""
        if not self._local or 'save_checkpoint' in vars(runner):
            yield
            return
        save = runner.save_checkpoint

        def save_checkpoint(out_dir, filename, *args, **kwargs):
            final = osp.join(out_dir, filename)
            if not is_main_process():  # ranks > 0 write nothing
                return save(out_dir, filename, *args, **kwargs)
            with atomic_target(final) as tmp:
                save(osp.dirname(tmp), osp.basename(tmp), *args, **kwargs)

        runner.save_checkpoint = save_checkpoint
        try:
            yield
        finally:
            del runner.save_checkpoint

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        """Write checkpoint ``step``, then ``last_checkpoint``, then delete
        the checkpoint that falls out of ``max_keep_ckpts``."""
        dropped = None
        if self.max_keep_ckpts > 0 and not (
                self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                dropped = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        with self._atomic_saves(runner):
            runner.save_checkpoint(
                self.out_dir, filename, self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta, by_epoch=self.by_epoch,
                backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        write_text_atomic(osp.join(runner.work_dir, 'last_checkpoint'),
                          self.last_ckpt)
        if dropped is not None and dropped != step:
            self._remove_checkpoint(runner, self.filename_tmpl.format(dropped))

    def _remove_checkpoint(self, runner, filename: str) -> None:
        stem, ext = osp.splitext(filename)
        names = [filename] + [f'{stem}{suffix}{ext or ".pth"}'
                              for suffix in self.companion_suffixes]
        for name in names:
            path = self.file_backend.join_path(self.out_dir, name)
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # deepspeed checkpoints
                self.file_backend.rmtree(path)
        if self._local:
            fsync_folder(self.out_dir)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """MMEngine's best-checkpoint logic with atomic writes."""
        with self._atomic_saves(runner):
            super()._save_best_checkpoint(runner, metrics)


# ------------------------------------------------------------ resuming
def resumable_checkpoints(folder: str) -> List[str]:
    """The checkpoints of ``folder`` a run can resume from, newest first
    (by modification time, then by number): ``epoch_N.pth`` and
    ``iter_N.pth``; student exports, best and published checkpoints and
    temporary files are not candidates.

    Returns:
        list[str]: The checkpoint paths, newest first.
    """
    if not osp.isdir(folder):
        return []
    found: List[Tuple[float, int, str]] = []
    for name in os.listdir(folder):
        match = RESUMABLE_NAME.match(name)
        path = osp.join(folder, name)
        if match and osp.isfile(path):
            found.append((osp.getmtime(path), int(match[2]), path))
    return [path for _, _, path in sorted(found, reverse=True)]


def _first_complete(paths: List[str]) -> Optional[str]:
    """The first of ``paths`` that passes the checkpoint check; the others
    before it are logged with their reason."""
    for path in paths:
        try:
            check_checkpoint_file(path, 'checkpoint')
        except (FileNotFoundError, CheckpointError) as err:
            print_log(f'not resuming from {path}: {err}', 'current',
                      logging.WARNING)
            continue
        return path
    return None


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` (without a path) continues from.

    The work dir's own files come first, so a copied work dir never
    resumes from the folder it was copied from:

    1. the file ``last_checkpoint`` names, when it lies in the work dir
       and is complete;
    2. when it names another folder, the file of the same name inside the
       work dir (a copied work dir), if complete;
    3. the newest complete ``epoch_N.pth`` / ``iter_N.pth`` of the work
       dir (``last_checkpoint`` missing, naming a deleted file, or a
       damaged one);
    4. only when the work dir holds no complete checkpoint: the named file
       in its own folder (checkpoints written to an ``out_dir``), then the
       newest complete checkpoint of that folder.

    Every step after the first logs why it was taken, and names the folder.

    Args:
        work_dir (str): The run's work dir.

    Returns:
        The checkpoint path, or ``None`` when there is none (the run starts
        from scratch, as MMEngine does).
    """
    named = None
    record = osp.join(work_dir, 'last_checkpoint')
    reason = f'{record} does not exist'
    if osp.isfile(record):
        with open(record) as f:
            named = f.read().strip() or None
        reason = f'{record} is empty'
    if named is not None and '://' in named:
        return named  # remote: left to MMEngine
    elsewhere = named is not None and \
        osp.abspath(osp.dirname(named) or work_dir) != osp.abspath(work_dir)
    if named is not None and not elsewhere:
        try:
            check_checkpoint_file(named, 'the checkpoint in last_checkpoint')
            return named
        except (FileNotFoundError, CheckpointError) as err:
            reason = str(err)
    if elsewhere:
        reason = (f'{record} names {named}, outside the work dir (a copied '
                  f'work dir?)')
        own = osp.join(work_dir, osp.basename(named))
        if osp.isfile(own) and _first_complete([own]) == own:
            print_log(f'resuming from {own}, the work dir\'s own copy of '
                      f'the checkpoint last_checkpoint names, because '
                      f'{reason}', 'current', logging.WARNING)
            return own
    found = _first_complete([p for p in resumable_checkpoints(work_dir)
                             if p != named])
    if found is not None:
        print_log(f'resuming from {found}, the newest complete checkpoint '
                  f'of the work dir, because {reason}', 'current',
                  logging.WARNING)
        return found
    if elsewhere:
        folder = osp.dirname(named)
        found = _first_complete(
            [named] + [p for p in resumable_checkpoints(folder)
                       if p != named])
        if found is not None:
            print_log(f'resuming from {found}, in {folder}: the work dir '
                      f'{work_dir} holds no complete checkpoint and '
                      f'{record} names that folder', 'current',
                      logging.WARNING)
            return found
    if named is not None or resumable_checkpoints(work_dir):
        folders = [work_dir] + ([osp.dirname(named)] if elsewhere else [])
        print_log(f'no complete checkpoint to resume from in {folders} '
                  f'({reason}); training starts from scratch', 'current',
                  logging.WARNING)
    return None
