"""Config changes that make a training run safe to kill and to resume:
atomic checkpoints, loops that resume inside an epoch, the random states in
every checkpoint, and the choice and checks of the checkpoint ``--resume``
continues from."""
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log

from mmkdflow.utils.checkpoint_loading import check_checkpoint_file
from .config_log import log_addition, log_change


def apply_resume(cfg: Config, resume: Optional[str]) -> None:
    """``--resume`` (the latest complete checkpoint of the work dir) or
    ``--resume PATH``; a ``load_from`` of the config is checked as well.

    Without a path the checkpoint is chosen here, not by MMEngine:
    ``last_checkpoint`` when it names a complete file, else the newest
    complete checkpoint of the work dir, with a log line saying why (see
    :func:`~mmkdflow.engine.hooks.find_resume_checkpoint`). Every file is
    checked first (:func:`~mmkdflow.utils.check_checkpoint_file`), so a
    missing, damaged or unsafe file is reported in mmkdflow's words.
    """
    if resume is None:
        if cfg.get('load_from'):
            check_checkpoint_file(cfg.load_from, 'load_from')
        return
    cfg.resume = True
    if resume != 'auto':
        resume = osp.expanduser(resume)
        check_checkpoint_file(resume, 'resume checkpoint')
        old, cfg.load_from = cfg.get('load_from'), resume
        log_change('load_from', old, resume, '--resume PATH, resume=True')
        return
    from .hooks.safe_checkpoint_hook import find_resume_checkpoint
    old, cfg.load_from = cfg.get('load_from'), \
        find_resume_checkpoint(cfg.work_dir)
    if cfg.load_from is None:
        cfg.resume = False
        print_log(f'--resume: no checkpoint in {cfg.work_dir}; training '
                  f'starts from scratch', 'current')
    else:
        log_change('load_from', old, cfg.load_from,
                   '--resume: the newest complete checkpoint, resume=True')


def use_safe_checkpointing(cfg: Config) -> None:
    """Make the run safe to kill at any moment (``tools/train.py`` calls
    this for every config).

    * ``default_hooks.checkpoint``: MMEngine's ``CheckpointHook`` becomes
      :class:`~mmkdflow.engine.SafeCheckpointHook` with the same arguments
      (atomic writes; the old checkpoint is deleted only after the new one
      and ``last_checkpoint`` are in place);
    * ``train_cfg``: MMEngine's ``EpochBasedTrainLoop`` becomes
      :class:`~mmkdflow.engine.ResumableEpochBasedTrainLoop` (resuming from
      an iteration checkpoint continues inside the epoch) and its
      ``IterBasedTrainLoop``
      :class:`~mmkdflow.engine.ResumableIterBasedTrainLoop` (the random
      states survive the skipping of trained batches).

    Other hook and loop types (a config's own) are left as they are.
    """
    hooks = cfg.get('default_hooks')
    checkpoint = hooks.get('checkpoint') if hooks else None
    if isinstance(checkpoint, dict) and str(checkpoint.get(
            'type', '')).split('.')[-1] == 'CheckpointHook':
        log_change('default_hooks.checkpoint.type', checkpoint['type'],
                   'mmkdflow.SafeCheckpointHook',
                   'atomic writes, the old checkpoint deleted after the new '
                   'one is in place')
        checkpoint['type'] = 'mmkdflow.SafeCheckpointHook'
    train_cfg = cfg.get('train_cfg')
    if isinstance(train_cfg, dict):
        loop = train_cfg.get('type')
        if loop is None and train_cfg.get('by_epoch', False):
            train_cfg.pop('by_epoch')
            loop = 'EpochBasedTrainLoop'
        if loop is None and train_cfg.get('by_epoch') is False:
            train_cfg.pop('by_epoch')
            loop = 'IterBasedTrainLoop'
        name = str(loop).split('.')[-1]
        if name in ('EpochBasedTrainLoop', 'IterBasedTrainLoop'):
            train_cfg['type'] = f'mmkdflow.Resumable{name}'
            log_change('train_cfg.type', loop, train_cfg['type'],
                       'resumes inside an epoch with the same random draws')


def add_resume_state_hook(cfg: Config) -> None:
    """Append :class:`ResumeStateHook` to ``custom_hooks`` unless present
    (``tools/train.py`` always does, so that every checkpoint it writes can
    be resumed with the same random draws)."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(str(h.get('type', '')).split('.')[-1] == 'ResumeStateHook'
               for h in hooks if isinstance(h, dict)):
        hooks.append(dict(type='mmkdflow.ResumeStateHook'))
        log_addition('custom_hooks', hooks[-1], 'random states and the '
                     'position in the epoch in every checkpoint')
    cfg.custom_hooks = hooks
