from .distill_point import DistillPoint
from .distiller import Distiller

__all__ = ['DistillPoint', 'Distiller']
