"""Flow-matching building blocks of FM-KT: schedules, time embedding,
the serial Euler sampler, meta-encoders and pair decoupling."""
from .euler_flow import FLOW_INITS, EulerFlow, GatedVelocityField
from .logit_head import FlowLogitHead, own_logits
from .meta_encoders import (META_ENCODERS, ConvNeXtBlock, LayerNorm2d,
                            MetaEncoderConv, MetaEncoderConvDet,
                            MetaEncoderConvNeXt, MetaEncoderMLP,
                            MetaEncoderResConv, build_meta_encoder)
from .pairing import decoupling_permutation, permute_targets
from .sampler import FlowTrajectory, VelocityField, euler_sample
from .schedules import (SCHEDULES, RectifiedSchedule, Schedule, VESchedule,
                        VPSchedule, build_schedule)
from .time_embedding import TimeEmbedding, sinusoidal_embedding
from .transformer_encoder import MetaEncoderTransformer

__all__ = [
    'FLOW_INITS', 'EulerFlow', 'GatedVelocityField', 'FlowLogitHead', 'own_logits', 'META_ENCODERS', 'ConvNeXtBlock', 'LayerNorm2d', 'MetaEncoderConv',
    'MetaEncoderConvDet', 'MetaEncoderConvNeXt', 'MetaEncoderMLP',
    'MetaEncoderResConv', 'MetaEncoderTransformer', 'build_meta_encoder',
    'decoupling_permutation', 'permute_targets', 'FlowTrajectory',
    'VelocityField', 'euler_sample', 'SCHEDULES', 'RectifiedSchedule',
    'Schedule', 'VESchedule', 'VPSchedule', 'build_schedule',
    'TimeEmbedding', 'sinusoidal_embedding'
]
