"""Distillation losses: KD, DKD, DIST, PKD, MSE, CWD, attention-MSE.

Every loss follows :class:`BaseDistillLoss`:
``loss(student, teacher, ctx=None) -> Tensor``, teacher detached, float32.
"""
from .attention_mse_loss import AttentionMSELoss
from .base import BaseDistillLoss
from .cwd_loss import ChannelWiseDivergence
from .dist_loss import DISTLoss
from .dkd_loss import DKDLoss
from .kd_loss import KDLoss
from .mse_loss import MSELoss
from .pkd_loss import PKDLoss

__all__ = [
    'BaseDistillLoss', 'KDLoss', 'DKDLoss', 'DISTLoss', 'PKDLoss', 'MSELoss',
    'ChannelWiseDivergence', 'AttentionMSELoss'
]
