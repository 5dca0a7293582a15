"""Simple connectors (identity, a learned 1x1 adapter) and the one 1x1
channel projection that mmkdflow's connectors use."""
from typing import Any, List, Optional

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkdflow.registry import MODELS
from ..core import DistillContext
from ..utils import from_map, to_map
from .base import (BaseConnector, ConnectorOutput, IdentityAtInference,
                   check_student_channels)


class ChannelProjection(nn.Sequential):
    """``y = BN(W x + b)`` per position: a 1x1 convolution from
    ``in_channels`` to ``out_channels``, optionally followed by a
    BatchNorm (then without the cancelled bias). ``(B, C)`` inputs are
    viewed as ``(B, C, 1, 1)`` and returned as ``(B, C_out)``; ``(B, N, C)``
    transformer tokens (channels last) as ``(B, C, N, 1)`` and returned as
    ``(B, N, C_out)``.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        with_bn (bool): Append a BatchNorm2d. Defaults to False.

    Raises:
        ValueError: For non-positive channel counts.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 with_bn: bool = False) -> None:
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(
                f'a 1x1 projection needs positive channel counts, got '
                f'in_channels={in_channels}, out_channels={out_channels}')
        layers = [nn.Conv2d(in_channels, out_channels, 1, bias=not with_bn)]
        if with_bn:
            layers.append(nn.BatchNorm2d(out_channels))
        super().__init__(*layers)
        self.in_channels, self.out_channels = in_channels, out_channels

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:  # (B, N, C) tokens
            y = super().forward(x.transpose(1, 2).unsqueeze(-1))
            return y.squeeze(-1).transpose(1, 2)
        x, was_vector = to_map(x)
        return from_map(super().forward(x), was_vector)


@MODELS.register_module()
class IdentityConnector(IdentityAtInference, BaseConnector):
    """Passes the student tensors through unchanged."""

    def forward(self, student: List[Tensor], teacher: Optional[List[Tensor]],
                ctx: DistillContext, replaced: Any = None
                ) -> ConnectorOutput:
        return ConnectorOutput(student=list(student))


@MODELS.register_module()
class ConvAdapter(BaseConnector):
    """A :class:`ChannelProjection` mapping student channels to teacher
    channels, shared by all selected entries (e.g. FPN levels).

    With ``channel_norm=True`` the projected student and the teacher
    tensors are both standardised per channel over ``(N, H, W)`` with the
    batch's own statistics, ``(x - mean) / sqrt(var + 1e-5)`` (a
    BatchNorm2d without affine parameters or running statistics, in
    training and inference alike), before the loss compares them: MMRazor's
    ``ConvModuleConnector`` / ``NormConnector`` pair with
    ``norm_cfg=dict(type='BN', affine=False, track_running_stats=False)``
    of the RTMDet CWD recipe.

    Args:
        in_channels (int): Student channels.
        out_channels (int): Teacher channels.
        with_bn (bool): Append a BatchNorm2d. Defaults to False.
        channel_norm (bool): Standardise the projected student and the teacher
            per channel (see above). Defaults to False.
        init_cfg (dict | list[dict], optional): MMEngine initialisation
            config. Defaults to None.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 with_bn: bool = False, channel_norm: bool = False,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.adapter = ChannelProjection(in_channels, out_channels, with_bn)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.channel_norm = bool(channel_norm)

    def forward(self, student: List[Tensor], teacher: Optional[List[Tensor]],
                ctx: DistillContext, replaced: Any = None
                ) -> ConnectorOutput:
        check_student_channels(student, self.in_channels, 'ConvAdapter',
                               'in_channels')
        projected = [self.adapter(x) for x in student]
        if not self.channel_norm:
            return ConnectorOutput(student=projected)
        return ConnectorOutput(
            student=[_standardise(x) for x in projected],
            teacher=None if teacher is None else
            [_standardise(t) for t in teacher])


def _standardise(x: Tensor) -> Tensor:
    """Per-channel standardisation over ``(N, H, W)`` with the batch's
    statistics (biased variance, eps 1e-5), as a BatchNorm2d without affine
    parameters or running statistics."""
    return F.batch_norm(x, None, None, training=True, eps=1e-5)
