"""The guarantees of a training run, switched on by one hook in the config.

``configs/_base_/default_runtime_distill.py`` lists this hook (and
:class:`~mmkdflow.engine.ResumeStateHook`) in ``custom_hooks``. A config
that inherits it gets the same run from ``tools/train.py``, mmdet's,
mmseg's or mmpretrain's own tools, ``mim train`` or a plain
``Runner.from_cfg(cfg).train()``. A config without it trains as plain
MMEngine does.
"""
import logging
import os.path as osp
from typing import List

from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import BaseLoop

from mmkdflow.registry import HOOKS
from ..checkpoint import (SafeCheckpointHook, check_checkpoint_file,
                          find_resume_checkpoint, make_resumable,
                          safe_mmengine_loaders)
from ..nonfinite_guard import NONFINITE_POLICIES, guard_optim_wrapper
from ..runner_args import (built_train_loop, checkpoint_to_load,
                           is_resuming, set_checkpoint_to_load)

#: Message hub info set while a run has this hook (read by the distiller,
#: which warns once when a training run lacks it).
SAFE_TRAINING_KEY = 'mmkdflow_safe_training'


@HOOKS.register_module()
class SafeTrainingHook(Hook):
    """Make a training run safe to kill, to resume and to read.

    At ``before_run`` (after MMEngine has built the train loop and the optim
    wrapper, before any checkpoint is read), it applies:

    * **atomic checkpoints**: MMEngine's ``CheckpointHook`` saves as
      :class:`~mmkdflow.engine.SafeCheckpointHook` (same arguments; the
      old checkpoint is deleted only after the new one is in place);
    * **resume inside an epoch**: MMEngine's ``EpochBasedTrainLoop`` and
      ``IterBasedTrainLoop`` run as their resumable subclasses
      (:mod:`mmkdflow.engine.checkpoint.resumable_loop`);
    * **the NaN/Inf guard**: the optim wrapper runs as its guarded class
      (:func:`~mmkdflow.engine.nonfinite_guard.guard_optim_wrapper`);
    * **the teacher-cache check**: ``model.teacher_cache`` with a random
      train pipeline is refused;
    * **the resume checkpoint**: ``resume=True`` without ``load_from``
      takes :func:`~mmkdflow.engine.checkpoint.find_resume_checkpoint` of the
      work dir; every file to load is checked first;
    * **safe loading**: MMEngine reads ``load_from``, the resume checkpoint
      and ``init_cfg`` weights through mmkdflow's weights-only loader
      (:class:`~mmkdflow.engine.checkpoint.safe_mmengine_loaders`),
      removed again before training, validation or testing starts.

    Components the config already names as mmkdflow's (``SafeCheckpointHook``,
    ``ResumableEpochBasedTrainLoop``, ``NonFiniteGuardOptimWrapper``) are
    left as they are. One log line lists what was applied.

    Args:
        nonfinite (str): What a NaN/Inf loss or gradient does: ``'raise'``
            stops the run before the weights change, ``'skip'`` skips the
            update, ``'off'`` leaves the optim wrapper unguarded.
            Defaults to ``'raise'``.
        atomic_checkpoints (bool): Apply the atomic checkpoint hook.
            Defaults to True.
        resumable_loop (bool): Apply the resumable loops. Defaults to True.
        safe_loading (bool): Read MMEngine's checkpoints weights-only.
            Defaults to True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, nonfinite: str = 'raise',
                 atomic_checkpoints: bool = True,
                 resumable_loop: bool = True,
                 safe_loading: bool = True) -> None:
        if nonfinite not in NONFINITE_POLICIES + ('off', ):
            raise ValueError(f"SafeTrainingHook: nonfinite must be 'raise', "
                             f"'skip' or 'off', got {nonfinite!r}")
        self.nonfinite = nonfinite
        self.atomic_checkpoints = atomic_checkpoints
        self.resumable_loop = resumable_loop
        self.safe_loading = safe_loading
        self._loaders = safe_mmengine_loaders()

    # ------------------------------------------------------------ start
    def before_run(self, runner) -> None:
        if self.safe_loading:
            self._loaders.install()
        loop = built_train_loop(runner)
        if not isinstance(loop, BaseLoop):
            return  # runner.test() / runner.val(): nothing is trained
        from mmkdflow.models.distillers.teacher_cache import \
            check_teacher_cache
        if getattr(runner, 'cfg', None) is not None:
            check_teacher_cache(runner.cfg)
        applied = self._apply(runner, loop)
        self._choose_checkpoint(runner)
        runner.message_hub.update_info(SAFE_TRAINING_KEY, True)
        if applied:
            runner.logger.info('SafeTrainingHook: ' + '; '.join(applied))

    def _apply(self, runner, loop: BaseLoop) -> List[str]:
        """Apply the hook, the loop and the guard; what was applied."""
        applied = []
        if self.atomic_checkpoints:
            for hook in runner.hooks:
                if type(hook) is CheckpointHook:
                    SafeCheckpointHook.adopt(hook)
                    applied.append('CheckpointHook saves atomically')
        name = type(loop).__name__
        if self.resumable_loop and make_resumable(loop):
            applied.append(f'{name} resumes inside an epoch')
        if self.nonfinite != 'off':
            for name in guard_optim_wrapper(runner.optim_wrapper,
                                            self.nonfinite):
                applied.append(f'{name} guarded against NaN/Inf '
                               f'(nonfinite={self.nonfinite!r})')
        return applied

    def _choose_checkpoint(self, runner) -> None:
        """Pick the resume checkpoint, and check the file to load."""
        path = checkpoint_to_load(runner)
        if is_resuming(runner) and path is None:
            path = find_resume_checkpoint(runner.work_dir)
            if path is None:
                print_log(f'resume=True: no checkpoint in {runner.work_dir};'
                          f' training starts from scratch', 'current')
                return
            set_checkpoint_to_load(runner, path)
            runner.logger.info(f'resuming from {path}')
            return
        if path is not None and '://' not in path:
            path = osp.expanduser(path)
            check_checkpoint_file(
                path, 'resume checkpoint' if is_resuming(runner)
                else 'load_from')
            set_checkpoint_to_load(runner, path)

    # ------------------------------------------------- loading finished
    def before_train(self, runner) -> None:
        self._loaders.restore()

    def before_val(self, runner) -> None:
        self._loaders.restore()

    def before_test(self, runner) -> None:
        self._loaders.restore()

    def after_run(self, runner) -> None:
        self._loaders.restore()
        runner.message_hub.update_info(SAFE_TRAINING_KEY, False)


def warn_without_safe_training(message_hub) -> None:
    """Warn once per run that its config has no :class:`SafeTrainingHook`
    (called by the distiller at its first training step)."""
    if message_hub.get_info(SAFE_TRAINING_KEY) is None:
        message_hub.update_info(SAFE_TRAINING_KEY, False)
        print_log(
            'this run has no mmkdflow.SafeTrainingHook: checkpoints are not '
            'atomic, a resume restarts the epoch and a NaN/Inf loss reaches '
            'the weights. Inherit configs/_base_/default_runtime_distill.py '
            "(mmkdflow::_base_/default_runtime_distill.py) and keep its "
            'custom_hooks: custom_hooks = [*_base_.custom_hooks, ...]',
            'current', logging.WARNING)
