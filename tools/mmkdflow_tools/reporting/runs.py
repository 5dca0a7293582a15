"""Read finished MMEngine runs back from their work dirs.

MMEngine's ``LocalVisBackend`` writes one JSON object per line to
``<work_dir>/<timestamp>/vis_data/scalars.json``: a training record every
``LoggerHook`` interval (``loss``, ``time``, ``data_time``, ``lr``, ``epoch``
for epoch-based loops, ``iter``, ``step``) and a validation record after every
validation pass (the evaluator's keys, e.g. ``coco/bbox_mAP``, ``mIoU`` or
``accuracy/top1``, with ``step`` = the epoch for epoch-based loops, the
iteration for iteration-based ones). Every launch writes a new timestamped
folder; the newest one that holds the metric is the run.

This module uses the standard library only (matplotlib for the figures in
:mod:`.compare`); it reads the files, never the checkpoints.
"""
import json
import math
import os
import os.path as osp
import statistics
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

#: Metric keys that the downstream evaluators log as a fraction in [0, 1]
#: (reported x 100, as percentages); any other key is reported as logged
#: (mmseg's ``mIoU`` / ``aAcc`` / ``mAcc`` and mmpretrain's
#: ``accuracy/top1`` are already percentages).
FRACTION_PREFIXES = ('coco/', 'pascal_voc/', 'voc/', 'lvis/')


def format_value(value: float) -> str:
    """The one-decimal form every reported value is printed in."""
    return f'{value:.1f}'


def metric_scale(metric: str) -> float:
    """Factor from a logged metric to the reported percentage.

    Args:
        metric: The evaluator's key, e.g. ``'coco/bbox_mAP'``, ``'mIoU'``,
            ``'accuracy/top1'``.

    Returns:
        ``100.0`` for keys logged as fractions (mmdet's COCO / VOC / LVIS
        metrics), ``1.0`` for every other key (logged as percentages).
    """
    return 100.0 if metric.startswith(FRACTION_PREFIXES) else 1.0


@dataclass
class RunRecord:
    """One finished training run, as its MMEngine logs describe it.

    Attributes:
        work_dir: The work dir given to the run.
        log_dir: The timestamped folder that holds ``vis_data/scalars.json``.
        metric: The metric key.
        final: The metric of the last validation pass, exactly as logged.
        curve: ``(step, value)`` of every validation pass, as logged; the
            step is the epoch for epoch-based runs, else the iteration.
        by_epoch: Whether the run's loop counts epochs.
        iter_time: Median seconds per training iteration over the logged
            windows, the first window (warm-up) left out when there are more.
    """

    work_dir: str
    log_dir: str
    metric: str
    final: float
    curve: List[Tuple[int, float]] = field(default_factory=list)
    by_epoch: bool = True
    iter_time: float = float('nan')

    @property
    def value(self) -> float:
        """The final metric as reported (a percentage)."""
        return self.final * metric_scale(self.metric)


def run_dirs(work_dir: str) -> List[str]:
    """Timestamped log folders of a work dir, oldest first.

    Args:
        work_dir: A work dir given to ``tools/train.py``.

    Returns:
        The sub-folders that hold ``vis_data/scalars.json``, sorted by name
        (MMEngine names them ``YYYYMMDD_HHMMSS``).
    """
    if not osp.isdir(work_dir):
        return []
    return sorted(
        osp.join(work_dir, d) for d in os.listdir(work_dir)
        if osp.isfile(osp.join(work_dir, d, 'vis_data', 'scalars.json')))


def _records(log_dir: str) -> List[dict]:
    path = osp.join(log_dir, 'vis_data', 'scalars.json')
    records = []
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(
                    f'{path}:{number} is not a JSON record ({exc}); the run '
                    f'may have been killed while writing: rerun it or delete '
                    f'the line') from exc
    return records


def read_run(work_dir: str, metric: str) -> RunRecord:
    """Read the newest run of ``work_dir`` that logged ``metric``.

    Args:
        work_dir: A work dir of ``tools/train.py`` (holding one or more
            timestamped log folders).
        metric: The evaluator's key to read.

    Returns:
        The run's final metric, validation curve and median iteration time.

    Raises:
        FileNotFoundError: No log folder under ``work_dir``.
        KeyError: No log folder holds a validation record with ``metric``;
            the message lists the keys that were logged.
    """
    dirs = run_dirs(work_dir)
    if not dirs:
        raise FileNotFoundError(
            f'no <timestamp>/vis_data/scalars.json under {work_dir}: is it '
            f'the work dir of a finished MMEngine run (LocalVisBackend on)?')
    seen = set()
    for log_dir in reversed(dirs):
        records = _records(log_dir)
        curve, times, by_epoch = [], [], False
        for record in records:
            if metric in record:
                curve.append((int(record.get('step', len(curve) + 1)),
                              float(record[metric])))
            elif 'loss' in record and 'time' in record:
                times.append(float(record['time']))
                by_epoch = by_epoch or 'epoch' in record
            seen.update(k for k in record if '/' in k or k.isupper()
                        or k in ('mIoU', 'aAcc', 'mAcc'))
        if curve:
            steady = times[1:] or times
            return RunRecord(
                work_dir=work_dir, log_dir=log_dir, metric=metric,
                final=curve[-1][1], curve=curve, by_epoch=by_epoch,
                iter_time=statistics.median(steady) if steady else math.nan)
    raise KeyError(
        f'no validation record with {metric!r} under {work_dir}; logged '
        f'metric keys: {sorted(seen) or "none"}. Pass the evaluator key the '
        f'run logs (--metric), or check that its validation ran.')


def seed_dirs(path: str) -> List[str]:
    """The work dirs of one method: ``path`` itself, or its seed folders.

    Args:
        path: Either one run's work dir (it holds timestamped log folders) or
            a folder of such work dirs (e.g. ``seed0``, ``seed1``...).

    Returns:
        The run work dirs, sorted by name.

    Raises:
        FileNotFoundError: Neither ``path`` nor any sub-folder is a run.
    """
    if run_dirs(path):
        return [path]
    subs = sorted(osp.join(path, d) for d in os.listdir(path)) \
        if osp.isdir(path) else []
    found = [d for d in subs if run_dirs(d)]
    if not found:
        raise FileNotFoundError(
            f'{path} is neither a work dir of a finished run nor a folder of '
            f'such work dirs (no <timestamp>/vis_data/scalars.json)')
    return found


def read_runs(paths: Sequence[str], metric: str) -> List[RunRecord]:
    """Read every run (seed) of one method.

    Args:
        paths: Work dirs of the method's runs, or folders of them (see
            :func:`seed_dirs`).
        metric: The evaluator's key.

    Returns:
        One record per run, in the order of ``paths`` (seed folders sorted).
    """
    runs = []
    for path in paths:
        runs.extend(read_run(d, metric) for d in seed_dirs(path))
    return runs


def pick_metric(work_dir: str,
                candidates: Sequence[str] = ('coco/bbox_mAP', 'mIoU',
                                             'accuracy/top1')
                ) -> Optional[str]:
    """The first of ``candidates`` that a run of ``work_dir`` logged, if any
    (lets ``tools/compare_runs.py`` work without ``--metric`` on the
    standard detection, segmentation and classification evaluators)."""
    for log_dir in reversed(run_dirs(work_dir)):
        keys = set()
        for record in _records(log_dir):
            keys.update(record)
        for key in candidates:
            if key in keys:
                return key
    return None
