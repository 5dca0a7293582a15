from .model_builder import (build_mmkdflow_module, build_task_model,
                            resolve_model_cfg)

__all__ = ['build_mmkdflow_module', 'build_task_model', 'resolve_model_cfg']
