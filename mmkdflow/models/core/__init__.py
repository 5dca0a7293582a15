"""The core types of a distillation step: the context connectors and
losses read, and the step object the distiller hands around."""
from .context import DistillContext
from .step import DistillStep
from .weights import check_nonnegative_weight

__all__ = ['DistillContext', 'DistillStep', 'check_nonnegative_weight']
