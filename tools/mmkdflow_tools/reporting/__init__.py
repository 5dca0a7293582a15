"""Reporting of finished runs: the table, charts and learning curves of
``tools/compare_runs.py`` and ``make demo`` (reads MMEngine's own logs,
never a checkpoint)."""
from .compare import (BETTER, WITHIN, WORSE, Report, Row, compare,
                      markdown_table, summarise, verdict)
from .plots import bar_chart, learning_curves, mean_curve
from .runs import (RunRecord, format_value, metric_scale, pick_metric,
                   read_run, read_runs, run_dirs, seed_dirs)

__all__ = [
    'BETTER', 'WITHIN', 'WORSE', 'Report', 'Row', 'RunRecord', 'bar_chart',
    'compare', 'format_value', 'learning_curves', 'markdown_table',
    'mean_curve', 'metric_scale', 'pick_metric', 'read_run', 'read_runs',
    'run_dirs', 'seed_dirs', 'summarise', 'verdict'
]
