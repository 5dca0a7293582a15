"""Training loops that resume exactly from any checkpoint.

MMEngine 0.10.7's ``EpochBasedTrainLoop`` resumed from an iteration
checkpoint (``CheckpointHook(by_epoch=False)``) restarts that epoch at its
first batch while keeping the saved iteration count: the epoch's first
batches are trained twice, the run ends past ``max_iters`` and the ETA goes
negative. :class:`ResumableEpochBasedTrainLoop` records in the message hub
(which every checkpoint stores) how many batches of the current epoch are
trained, and on resume continues with the next unseen batch of the same
epoch, in the same order, with the random states of the interrupted run.

MMEngine's ``IterBasedTrainLoop`` skips the trained batches on resume by
loading them after the random states are restored, so random transforms in
the main process draw other numbers than in the interrupted run;
:class:`ResumableIterBasedTrainLoop` puts the states back after skipping.
"""
import logging
from typing import Iterable, Iterator, Optional, Tuple

from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from torch.utils.data import DataLoader

from mmkdflow.registry import LOOPS
from .resume_state_hook import capture_random_states, restore_random_states

#: Message hub info: ``[epoch, batches trained in it, batches per epoch]``.
EPOCH_PROGRESS_KEY = 'mmkdflow_epoch_progress'


def check_counts(loop: str, **counts) -> None:
    """Refuse step counts below 1 (a run of 0 epochs trains nothing; a
    validation interval of 0 divides by zero in MMEngine's loop).

    Raises:
        ValueError: Naming the setting and the fix.
    """
    for name, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) \
                or value < 1:
            raise ValueError(
                f'{loop}: train_cfg.{name} must be an integer >= 1, got '
                f'{value!r}; to skip validation set val_cfg=None (or a '
                f'val_interval larger than the run)' if name == 'val_interval'
                else f'{loop}: train_cfg.{name} must be an integer >= 1, '
                f'got {value!r}')


class _SkipFirstBatches:
    """A batch sampler that yields those of ``batch_sampler`` after the
    first ``skip`` (the skipped index lists are drawn, not loaded)."""

    def __init__(self, batch_sampler: Iterable, skip: int) -> None:
        self.batch_sampler = batch_sampler
        self.skip = skip

    def __iter__(self) -> Iterator:
        batches = iter(self.batch_sampler)
        for _ in range(self.skip):
            next(batches)
        yield from batches

    def __len__(self) -> int:
        return len(self.batch_sampler) - self.skip


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that resumes mid-epoch where it stopped.

    Same arguments as :class:`mmengine.runner.EpochBasedTrainLoop`, plus:

    Args:
        load_skipped (bool, optional): How the already trained batches of a
            resumed epoch are skipped. ``False``: their indices are drawn from
            the batch sampler and nothing is loaded (exact when the data are
            loaded in the main process, ``num_workers=0``). ``True``: they are
            loaded and discarded, so that every worker's random state advances
            as in the interrupted run (exact with workers and random
            transforms, at the cost of loading those batches). ``None``
            (default): ``True`` with workers, ``False`` without. Defaults to
            None.

    The random states of the interrupted run (restored by
    ``ResumeStateHook``) are put back after the data iterator is created
    and the batches are skipped, so the next batch and the next step draw
    what they drew in the uninterrupted run. With
    ``persistent_workers=True`` the workers' random states carry over from
    epoch to epoch and cannot be restored: a resumed run then matches only
    if the data pipeline draws no random numbers (a warning says so).
    """

    def __init__(self, runner, dataloader, max_epochs: int,
                 val_begin: int = 1, val_interval: int = 1,
                 dynamic_intervals=None,
                 load_skipped: Optional[bool] = None) -> None:
        check_counts('ResumableEpochBasedTrainLoop', max_epochs=max_epochs,
                     val_interval=val_interval)
        super().__init__(runner, dataloader, max_epochs, val_begin,
                         val_interval, dynamic_intervals)
        self.load_skipped = load_skipped

    def _progress(self, done: int) -> None:
        self.runner.message_hub.update_info(
            EPOCH_PROGRESS_KEY, [self._epoch, done, len(self.dataloader)])

    def run_iter(self, idx, data_batch) -> None:
        """One batch; the progress recorded first counts it as trained, so
        a checkpoint written by ``after_train_iter`` resumes after it."""
        self._progress(idx + 1)
        super().run_iter(idx, data_batch)

    def _batches_done(self) -> int:
        """How many batches of the current epoch the resumed checkpoint had
        trained (0 for a fresh epoch)."""
        progress = self.runner.message_hub.get_info(EPOCH_PROGRESS_KEY)
        if not progress or progress[0] != self._epoch or progress[1] == 0:
            expected = self._epoch * len(self.dataloader)
            if progress is None and self._iter != expected:
                print_log(
                    f'resuming at iteration {self._iter}, which is not the '
                    f'start of epoch {self._epoch + 1} (iteration '
                    f'{expected}), from a checkpoint without the epoch '
                    f'progress of ResumableEpochBasedTrainLoop: the epoch '
                    f'restarts at its first batch', 'current',
                    logging.WARNING)
            return 0
        _, done, total = progress
        if total != len(self.dataloader):
            raise ValueError(
                f'the resumed checkpoint was written after {done} of the '
                f'{total} batches of epoch {self._epoch + 1}, but this run '
                f'has {len(self.dataloader)} batches per epoch: resume with '
                f'the dataset, batch size and number of processes of the '
                f'interrupted run, or resume from an epoch checkpoint')
        return done

    def _remaining_batches(self, skip: int) -> Iterator[Tuple[int, dict]]:
        """The batches of the current epoch after the first ``skip``, with
        their indices in the epoch."""
        loader = self.dataloader
        workers = getattr(loader, 'num_workers', 0)
        load = bool(workers) if self.load_skipped is None \
            else self.load_skipped
        if workers and getattr(loader, 'persistent_workers', False):
            print_log('persistent_workers=True: the data workers\' random '
                      'states of the interrupted run cannot be restored; '
                      'random transforms will differ after resuming',
                      'current', logging.WARNING)
        states = capture_random_states()
        if load or getattr(loader, 'batch_sampler', None) is None:
            batches = iter(loader)
            for _ in range(skip):
                next(batches)
        else:
            batches = iter(DataLoader(
                loader.dataset,
                batch_sampler=_SkipFirstBatches(loader.batch_sampler, skip),
                num_workers=workers, collate_fn=loader.collate_fn,
                pin_memory=loader.pin_memory, timeout=loader.timeout,
                worker_init_fn=loader.worker_init_fn,
                generator=loader.generator))
        restore_random_states(states)
        return enumerate(batches, start=skip)

    def run_epoch(self) -> None:
        """Iterate one epoch, or what remains of a resumed one."""
        skip = self._batches_done()
        if skip == 0:
            super().run_epoch()
        else:
            self.runner.call_hook('before_train_epoch')
            self.runner.model.train()
            print_log(f'resuming epoch {self._epoch + 1} after its first '
                      f'{skip} of {len(self.dataloader)} batches', 'current')
            if skip < len(self.dataloader):
                for idx, data_batch in self._remaining_batches(skip):
                    self.run_iter(idx, data_batch)
            self.runner.call_hook('after_train_epoch')
            self._epoch += 1
        # a checkpoint of this epoch's end resumes with the next epoch
        self._progress_epoch_end()

    def _progress_epoch_end(self) -> None:
        self.runner.message_hub.update_info(
            EPOCH_PROGRESS_KEY, [self._epoch, 0, len(self.dataloader)])


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` whose resume keeps the interrupted run's
    random states.

    Same arguments and behaviour as
    :class:`mmengine.runner.IterBasedTrainLoop`. On resume the trained
    batches are loaded and discarded as MMEngine does (so data workers
    advance as in the interrupted run), and the random states restored by
    ``ResumeStateHook`` are put back afterwards, so that the next batch and
    the next step draw what they drew in the uninterrupted run.
    """

    def __init__(self, runner, dataloader, max_iters: int,
                 val_begin: int = 1, val_interval: int = 1000,
                 dynamic_intervals=None) -> None:
        check_counts('ResumableIterBasedTrainLoop', max_iters=max_iters,
                     val_interval=val_interval)
        super().__init__(runner, dataloader, max_iters, val_begin,
                         val_interval, dynamic_intervals)

    def run(self):
        """Launch training (MMEngine's loop with the states kept across
        the skipping of trained batches).

        Returns:
            nn.Module: The trained model, as MMEngine's loop returns.
        """
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            print_log(f'resuming at iteration {self._iter}: loading and '
                      f'discarding the {self._iter} batches already trained',
                      'current')
            states = capture_random_states()
            for _ in range(self._iter):
                next(self.dataloader_iterator)
            restore_random_states(states)
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None
                    and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0
                         or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model


def make_resumable(loop) -> bool:
    """Give a built MMEngine train loop the resume of its resumable
    subclass, in place (the dataloader and counters are kept).

    Args:
        loop (BaseLoop): ``EpochBasedTrainLoop`` or ``IterBasedTrainLoop``;
            other loops (a config's own, or resumable already) are left.

    Returns:
        bool: Whether the loop was changed.
    """
    if type(loop) is EpochBasedTrainLoop:
        check_counts('EpochBasedTrainLoop', max_epochs=loop.max_epochs,
                     val_interval=loop.val_interval)
        loop.__class__ = ResumableEpochBasedTrainLoop
        loop.load_skipped = None
        return True
    if type(loop) is IterBasedTrainLoop:
        check_counts('IterBasedTrainLoop', max_iters=loop.max_iters,
                     val_interval=loop.val_interval)
        loop.__class__ = ResumableIterBasedTrainLoop
        return True
    return False
