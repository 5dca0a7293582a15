"""Helpers of ``tools/benchmark.py``: what mmkdflow costs next to the
student it trains (connectors, distillation steps, exported students)."""
from .measure import (FLOP_METHOD, MEMORY_METHODS, count_flops, count_params,
                      peak_memory, time_side_by_side)
from .plot import plot_scaling
from .report import evaluate_goals, format_report
from .connector_section import connector_section
from .sections import export_section, step_section

__all__ = [
    'FLOP_METHOD', 'MEMORY_METHODS', 'count_flops', 'count_params',
    'peak_memory', 'time_side_by_side', 'evaluate_goals', 'format_report',
    'plot_scaling',
    'connector_section', 'export_section', 'step_section'
]
