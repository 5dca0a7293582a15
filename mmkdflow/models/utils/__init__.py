"""Helpers shared by the connectors and losses: building modules, the
vector-as-map view, the fp32 region and the ``torch.compile`` option."""
from .compile import CompileOption, compile_options, compiled
from .model_builder import (build_mmkdflow_module, build_task_model,
                            resolve_model_cfg)
from .precision import fp32_region
from .shapes import from_map, to_map

__all__ = ['CompileOption', 'build_mmkdflow_module', 'build_task_model',
           'compile_options', 'compiled', 'fp32_region', 'from_map',
           'resolve_model_cfg', 'to_map']
