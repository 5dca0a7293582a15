"""The figures of a comparison: a bar chart of the final metric per model
and the learning curves (validation metric per epoch, mean ± sd over
seeds) of every method."""
import statistics
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

from .runs import RunRecord, format_value, metric_scale

if TYPE_CHECKING:  # the rows come from .compare, which imports this module
    from .compare import Row


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def bar_chart(rows: Sequence['Row'], metric_name: str, path: str,
              title: str = '') -> None:
    """Bar per model (mean, sd as error bar, seeds as dots) into ``path``."""
    plt = _pyplot()
    colours = {'teacher': '#888888', 'student': '#4c72b0',
               'baseline': '#55a868', 'method': '#dd8452'}
    fig, ax = plt.subplots(figsize=(1.5 * len(rows) + 2, 4))
    for i, row in enumerate(rows):
        ax.bar(i, row.mean, yerr=row.sd or None, color=colours[row.role],
               capsize=4)
        if len(row.values) > 1:
            ax.plot([i] * len(row.values), row.values, 'k.', ms=4)
        ax.text(i, row.mean + row.sd, format_value(row.mean), ha='center',
                va='bottom', fontsize=8)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r.label.replace('+ ', '') for r in rows],
                       rotation=20, ha='right', fontsize=8)
    low = min(min(r.values) for r in rows)
    high = max(max(r.values) for r in rows)
    ax.set_ylim(max(0.0, low - 0.3 * (high - low) - 1), high +
                0.15 * (high - low) + 1)
    ax.set_ylabel(metric_name)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def mean_curve(runs: Sequence[RunRecord]) -> List[tuple]:
    """``(step, mean, sd)`` at every step all runs validated at, reported
    (percent) values."""
    by_step: Dict[int, List[float]] = {}
    for run in runs:
        scale = metric_scale(run.metric)
        for step, value in run.curve:
            by_step.setdefault(step, []).append(value * scale)
    return [(step, statistics.mean(v),
             statistics.stdev(v) if len(v) > 1 else 0.0)
            for step, v in sorted(by_step.items()) if len(v) == len(runs)]


def learning_curves(curves: Dict[str, Sequence[RunRecord]], metric_name: str,
                    path: str, title: str = '',
                    teacher: Optional[float] = None) -> None:
    """Validation metric against epoch (or iteration) for every method: the
    mean over seeds as a line, ± sd as a band; the teacher as a dashed
    line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    by_epoch = True
    for label, runs in curves.items():
        points = mean_curve(runs)
        if not points:
            continue
        by_epoch = by_epoch and all(r.by_epoch for r in runs)
        steps = [p[0] for p in points]
        means = [p[1] for p in points]
        sds = [p[2] for p in points]
        line, = ax.plot(steps, means, marker='o', ms=3, label=label)
        if any(sds):
            ax.fill_between(steps, [m - s for m, s in zip(means, sds)],
                            [m + s for m, s in zip(means, sds)],
                            color=line.get_color(), alpha=0.15)
    if teacher is not None:
        ax.axhline(teacher, color='#888888', ls='--', lw=1, label='teacher')
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel('epoch' if by_epoch else 'iteration')
    ax.set_ylabel(f'val {metric_name}')
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
