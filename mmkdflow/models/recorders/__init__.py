from .module_recorder import ModuleOutputRecorder, resolve_module

__all__ = ['ModuleOutputRecorder', 'resolve_module']
