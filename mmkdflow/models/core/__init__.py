"""The core types of a distillation step: the context connectors and
losses read, and the step object the distiller hands around."""
from .context import DistillContext
from .step import DistillStep

__all__ = ['DistillContext', 'DistillStep']
