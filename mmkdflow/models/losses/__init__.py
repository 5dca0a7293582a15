"""Distillation losses: KD, DKD, DIST, PKD, MSE, CWD, attention-MSE, ViTKD.

Every loss follows :class:`BaseDistillLoss`:
``loss(student, teacher, ctx=None, weight=None, avg_factor=None,
reduction_override=None) -> Tensor``, teacher detached, float32, reduced by
:func:`weight_reduce_loss` as mmdet's losses are.
"""
from .attention_mse_loss import AttentionMSELoss
from .base import (BaseDistillLoss, Reduction, build_distill_loss,
                   weight_reduce_loss)
from .cwd_loss import ChannelWiseDivergence
from .dist_loss import DISTLoss
from .dkd_loss import DKDLoss
from .kd_loss import KDLoss
from .mse_loss import MSELoss
from .pkd_loss import PKDLoss
from .vitkd_loss import ViTKDLoss

__all__ = [
    'BaseDistillLoss', 'KDLoss', 'DKDLoss', 'DISTLoss', 'PKDLoss', 'MSELoss',
    'ChannelWiseDivergence', 'AttentionMSELoss', 'ViTKDLoss', 'Reduction',
    'build_distill_loss', 'weight_reduce_loss'
]
