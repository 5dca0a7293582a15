from .module_recorder import (ModuleOutputRecorder, Recording, Replacer,
                              resolve_module)

__all__ = ['ModuleOutputRecorder', 'Recording', 'Replacer', 'resolve_module']
