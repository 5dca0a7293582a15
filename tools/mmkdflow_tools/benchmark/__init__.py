"""Helpers of ``tools/benchmark.py``: what mmkdflow costs next to the
student it trains (connectors, distillation steps, exported students) and
where a connector's time goes."""
from .breakdown import breakdown_section, op_breakdown
from .checkpoint_section import (CHECKPOINT_CONFIG, checkpoint_section,
                                 format_checkpoint_section)
from .connector_section import connector_section
from .measure import (FLOP_METHOD, MEMORY_METHODS, count_flops, count_params,
                      peak_memory, time_side_by_side)
from .plot import plot_scaling
from .report import evaluate_goals, format_report
from .sections import export_section, step_section

__all__ = [
    'CHECKPOINT_CONFIG', 'FLOP_METHOD', 'MEMORY_METHODS', 'breakdown_section',
    'checkpoint_section', 'connector_section', 'format_checkpoint_section',
    'count_flops', 'count_params', 'evaluate_goals', 'export_section',
    'format_report', 'op_breakdown', 'peak_memory', 'plot_scaling',
    'step_section', 'time_side_by_side'
]
