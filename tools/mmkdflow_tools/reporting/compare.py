"""Compare distillation runs with their teacher and the student alone.

One row per model: the metric (mean ± sample standard deviation over seeds
and every seed's value), the share of the teacher-student gap it closes, its
time per training iteration relative to the student alone, and a verdict
against the student alone and against the task's plain KD baseline:

* gap closed = ``(mean_method - mean_student) / (teacher - mean_student)``;
* verdict of A against B: ``better`` when ``mean_A - mean_B`` exceeds the
  seed spread, ``worse`` when it is below minus the spread, else
  ``within spread``; the spread is the larger of the two sample standard
  deviations. With a single seed on either side there is no spread to judge
  by: the verdict reads ``higher (1 seed)``, ``lower (1 seed)`` or
  ``equal (1 seed)``.

:func:`compare` writes ``results.md`` (the table), ``results.json`` (every
number in it, and every seed's logged value), ``results.png`` (bar chart) and
``curves.png`` (validation metric per epoch / per validation pass, one line
per method, mean over seeds) into an output folder.
"""
import math
import json
import os
import os.path as osp
import statistics
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

from .plots import bar_chart, learning_curves
from .runs import RunRecord, format_value, metric_scale

BETTER, WITHIN, WORSE = 'better', 'within spread', 'worse'


@dataclass
class Row:
    """One model of the table.

    Attributes:
        label: Name shown in the table.
        values: Reported metric of every seed (percentages).
        logged: The same values exactly as the runs logged them.
        mean: Mean over seeds.
        sd: Sample standard deviation over seeds (0 for one seed).
        gap: Share of the teacher-student gap closed, in percent (None for
            the teacher, the student alone, or when the gap is zero).
        rel_time: Median time per iteration relative to the student alone.
        vs_student: Verdict against the student alone.
        vs_baseline: Verdict against the plain KD baseline.
        role: ``'teacher'``, ``'student'``, ``'baseline'`` or ``'method'``.
    """

    label: str
    values: List[float]
    logged: List[float]
    mean: float
    sd: float
    gap: Optional[float] = None
    rel_time: Optional[float] = None
    vs_student: str = ''
    vs_baseline: str = ''
    role: str = 'method'
    work_dirs: List[str] = field(default_factory=list)


def verdict(values: Sequence[float], reference: Sequence[float]) -> str:
    """Judge ``values`` against ``reference`` by their seed spread.

    Args:
        values: The method's metric per seed.
        reference: The reference's metric per seed.

    Returns:
        ``'better'``, ``'within spread'`` or ``'worse'`` (see the module
        docstring), or ``'higher (1 seed)'`` / ``'lower (1 seed)'`` /
        ``'equal (1 seed)'`` when either side has a single seed.
    """
    if not values or not reference:
        raise ValueError('verdict needs at least one value on each side')
    diff = statistics.mean(values) - statistics.mean(reference)
    if len(values) < 2 or len(reference) < 2:
        word = 'higher' if diff > 0 else 'lower' if diff < 0 else 'equal'
        return f'{word} (1 seed)'
    spread = max(statistics.stdev(values), statistics.stdev(reference))
    if diff > spread:
        return BETTER
    if diff < -spread:
        return WORSE
    return WITHIN


def _row(label: str, runs: Sequence[RunRecord], role: str) -> Row:
    if not runs:
        raise ValueError(f'{label}: no runs to report')
    values = [r.value for r in runs]
    return Row(label=label, values=values, logged=[r.final for r in runs],
               mean=statistics.mean(values),
               sd=statistics.stdev(values) if len(values) > 1 else 0.0,
               role=role, work_dirs=[r.work_dir for r in runs])


def _median_time(runs: Sequence[RunRecord]) -> float:
    times = [r.iter_time for r in runs if not math.isnan(r.iter_time)]
    return statistics.mean(times) if times else math.nan


def summarise(teacher: Sequence[RunRecord],
              student: Sequence[RunRecord],
              methods: Dict[str, Sequence[RunRecord]],
              baseline: Optional[str] = None) -> List[Row]:
    """Build the table's rows.

    Args:
        teacher: The teacher's run(s) (their mean is the teacher's value).
        student: The student trained alone, one run per seed.
        methods: Label -> runs of every distillation method, in table order.
        baseline: Label (a key of ``methods``) of the plain KD baseline the
            other methods are judged against; None for no such column.

    Returns:
        Teacher, student alone, then one row per method.

    Raises:
        KeyError: ``baseline`` is not one of ``methods``.
    """
    if baseline is not None and baseline not in methods:
        raise KeyError(f'baseline {baseline!r} is not one of the methods '
                       f'{list(methods)}: pass the label of the plain KD run')
    t_row = _row('teacher', teacher, 'teacher')
    s_row = _row('student alone', student, 'student')
    s_time = _median_time(student)
    s_row.rel_time = 1.0 if not math.isnan(s_time) else None
    rows = [t_row, s_row]
    for label, runs in methods.items():
        row = _row(label, runs, 'baseline' if label == baseline else 'method')
        if t_row.mean != s_row.mean:
            row.gap = 100.0 * (row.mean - s_row.mean) / (t_row.mean -
                                                         s_row.mean)
        time = _median_time(runs)
        if not math.isnan(time) and not math.isnan(s_time) and s_time > 0:
            row.rel_time = time / s_time
        row.vs_student = verdict(row.values, s_row.values)
        if baseline is not None and label != baseline:
            row.vs_baseline = verdict(row.values,
                                      [r.value for r in methods[baseline]])
        rows.append(row)
    return rows


def markdown_table(rows: Sequence[Row], metric_name: str,
                   title: str = '', baseline: Optional[str] = None) -> str:
    """Render the rows as a Markdown table (with a title line if given)."""
    seeds = max(len(r.values) for r in rows if r.role != 'teacher')
    head = f'| model | {metric_name} | per seed | gap closed | ' \
        f'time/iter vs student | vs student alone |'
    rule = '|---|---|---|---|---|---|'
    if baseline is not None:
        head += f' vs {baseline} |'
        rule += '---|'
    lines = []
    if title:
        lines += [f'{title} ({seeds} seed{"s" if seeds > 1 else ""})', '']
    lines += [head, rule]
    for row in rows:
        mean = format_value(row.mean)
        if len(row.values) > 1:
            mean += f' ± {row.sd:.1f}'
        per_seed = ' / '.join(format_value(v) for v in row.values) \
            if len(row.values) > 1 else ''
        gap = '' if row.gap is None else f'{row.gap:.0f}%'
        rel = '' if row.rel_time is None else f'{row.rel_time:.2f}x'
        line = f'| {row.label} | {mean} | {per_seed} | {gap} | {rel} | ' \
            f'{row.vs_student} |'
        if baseline is not None:
            line += f' {row.vs_baseline} |'
        lines.append(line)
    return '\n'.join(lines)


@dataclass
class Report:
    """What :func:`compare` wrote and printed."""

    rows: List[Row]
    table: str
    markdown: str
    json: str
    chart: str
    curves: str


def compare(teacher: Sequence[RunRecord],
            student: Sequence[RunRecord],
            methods: Dict[str, Sequence[RunRecord]],
            out_dir: str,
            metric_name: str,
            title: str = '',
            baseline: Optional[str] = None) -> Report:
    """Summarise, and write the table, JSON, bar chart and learning curves.

    Args:
        teacher: The teacher's run(s).
        student: The student alone, one run per seed.
        methods: Label -> runs of every distillation method, table order.
        out_dir: Folder for ``results.md``, ``results.json``,
            ``results.png`` and ``curves.png`` (created if missing).
        metric_name: Name of the metric in the table (e.g. ``'mAP'``).
        title: Title line of the table and the figures.
        baseline: Label of the plain KD baseline among ``methods``.

    Returns:
        The rows, the table and the written paths.
    """
    rows = summarise(teacher, student, methods, baseline)
    table = markdown_table(rows, metric_name, title, baseline)
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: osp.join(out_dir, name) for name in
             ('results.md', 'results.json', 'results.png', 'curves.png')}
    with open(paths['results.md'], 'w', encoding='utf-8') as f:
        f.write(table + '\n')
    metric = (student[0] if student else teacher[0]).metric
    with open(paths['results.json'], 'w', encoding='utf-8') as f:
        json.dump(dict(title=title, metric=metric, metric_name=metric_name,
                       scale=metric_scale(metric), baseline=baseline,
                       rows=[asdict(r) for r in rows]), f, indent=1)
    bar_chart(rows, metric_name, paths['results.png'], title)
    learning_curves({'student alone': student, **methods}, metric_name,
                    paths['curves.png'], title, teacher=rows[0].mean)
    return Report(rows=rows, table=table, markdown=paths['results.md'],
                  json=paths['results.json'], chart=paths['results.png'],
                  curves=paths['curves.png'])
