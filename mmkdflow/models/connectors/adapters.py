"""Simple connectors: identity and a learned 1x1 adapter."""
from typing import Any, List, Mapping, Optional

import torch.nn as nn
from torch import Tensor

from mmkdflow.registry import MODELS
from ..core import DistillContext
from .base import BaseConnector, ConnectorOutput, check_student_channels


@MODELS.register_module()
class IdentityConnector(BaseConnector):
    """Passes the student tensors through unchanged."""

    @classmethod
    def identity_at_inference_for(cls, cfg: Mapping) -> bool:
        """Always: the identity at every call."""
        return True

    def forward(self, student: List[Tensor], teacher: Optional[List[Tensor]],
                ctx: DistillContext, replaced: Any = None
                ) -> ConnectorOutput:
        return ConnectorOutput(student=list(student))


@MODELS.register_module()
class ConvAdapter(BaseConnector):
    """A 1x1 convolution (optionally + BatchNorm) mapping student channels to
    teacher channels, shared by all selected entries (e.g. FPN levels).

    ``y = BN(W x + b)`` applied per position; inputs of shape ``(B, C)`` are
    treated as ``(B, C, 1, 1)`` and returned as ``(B, C_out)``.

    Args:
        in_channels: Student channels.
        out_channels: Teacher channels.
        with_bn: Append a BatchNorm2d.
        init_cfg: MMEngine initialisation config.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 with_bn: bool = False, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(
                f'ConvAdapter needs positive channel counts, got '
                f'in_channels={in_channels}, out_channels={out_channels}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        layers = [nn.Conv2d(in_channels, out_channels, 1, bias=not with_bn)]
        if with_bn:
            layers.append(nn.BatchNorm2d(out_channels))
        self.adapter = nn.Sequential(*layers)

    def _project(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            return self.adapter(x[:, :, None, None]).flatten(1)
        return self.adapter(x)

    def forward(self, student: List[Tensor], teacher: Optional[List[Tensor]],
                ctx: DistillContext, replaced: Any = None
                ) -> ConnectorOutput:
        check_student_channels(student, self.in_channels, 'ConvAdapter',
                               'in_channels')
        return ConnectorOutput(student=[self._project(x) for x in student])
