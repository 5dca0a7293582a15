"""The pieces of ``tools/demo.py``: the options a demo run gets, cached
training runs in ``tools/train.py`` subprocesses, run side by side, and the
FM-KT test-steps sweep. The task table and the command line stay in the
tool."""
from .fmkt_steps import fmkt_steps, run_tool, test_log_values
from .options import (TUNE_DATA, backbone_option, is_distiller, load_config,
                      run_options)
from .pool import RunPool
from .training import (ROOT, STAMP, cached_run, extract_backbone, fingerprint,
                       progress_line, stop_all, train)

__all__ = [
    'ROOT', 'RunPool', 'STAMP', 'TUNE_DATA', 'backbone_option',
    'cached_run', 'extract_backbone', 'fingerprint', 'fmkt_steps',
    'is_distiller', 'load_config', 'progress_line', 'run_options', 'run_tool',
    'stop_all', 'test_log_values', 'train'
]
