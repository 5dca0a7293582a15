from .distill_point import DistillPoint
from .offline_distiller import OfflineDistiller

__all__ = ['DistillPoint', 'OfflineDistiller']
