"""Side-by-side demo runs: ``jobs`` training subprocesses at a time.

With one thread per run (the default of ``tools/demo.py``) a run's numbers
do not depend on how many cores the machine has, and two runs side by side
on a 2-core machine finish sooner than the same two runs one after the other
with two threads each: the demo's small students use a second thread
poorly, and each run's single-threaded parts (start-up, data, COCO
evaluation) overlap with the other's training.
"""
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Optional

from . import training


class RunPool:
    """Runs callables ``jobs`` at a time, in the order they were submitted.

    On the first failure every other training subprocess is stopped and
    the jobs not yet started are dropped, so a failed demo does not keep
    training for minutes; a job submitted after the failure is dropped as
    well (its future comes back cancelled), and :meth:`close` (the end of a
    ``with`` block) re-raises that first failure.

    Args:
        jobs: How many jobs run at once (at least 1).

    Raises:
        ValueError: ``jobs`` is below 1.
    """

    def __init__(self, jobs: int):
        if jobs < 1:
            raise ValueError(f'--jobs must be at least 1, got {jobs}')
        self._executor = ThreadPoolExecutor(max_workers=jobs)
        self._failure: Optional[BaseException] = None
        # Orders a submit against a failure's shutdown of the executor.
        self._lock = threading.Lock()

    def submit(self, fn: Callable, *args: Any, **kwargs: Any) -> Future:
        """Queue ``fn(*args, **kwargs)``; after a failure, drop it (the
        returned future is cancelled)."""

        def job():
            try:
                return fn(*args, **kwargs)
            except BaseException as exc:
                self._stop(exc)
                raise

        with self._lock:
            if self._failure is None:
                return self._executor.submit(job)
        dropped = Future()
        dropped.cancel()
        return dropped

    def _stop(self, exc: BaseException) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = exc
            self._executor.shutdown(wait=False, cancel_futures=True)
        training.stop_all()

    def close(self) -> None:
        """Wait for every job; re-raise the first failure, if any."""
        self._executor.shutdown(wait=True)
        if self._failure is not None:
            raise self._failure

    def __enter__(self) -> 'RunPool':
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:  # e.g. Ctrl-C while queueing
            self._stop(exc)
            self._executor.shutdown(wait=True)
            return
        self.close()
