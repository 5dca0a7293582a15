"""ShuffleNet V1 (Zhang et al., 2018) for CIFAR in the CRD zoo's form
(``ShuffleV1``: 3 groups, 1x1 stem, no max-pool)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmkdflow.registry import MODELS
from .cifar_base import CIFAR_INIT_CFG, channel_shuffle
from .staged_backbone import StagedBackbone


class ShuffleUnitV1(BaseModule):
    """ShuffleNet V1 unit: grouped 1x1 conv, channel shuffle, 3x3
    depthwise conv, grouped 1x1 conv.

    As in the CRD zoo, BN + ReLU follow the first conv and the depthwise
    conv, BN the last one; a stride-2 unit concatenates a 3x3 average-pooled
    shortcut, a stride-1 unit adds the input; ReLU closes the unit. The
    bottleneck has ``branch_channels // 4`` channels.

    Args:
        in_channels (int): Input channels.
        branch_channels (int): Output channels of the conv branch (a
            stride-2 unit outputs ``in_channels + branch_channels``).
        stride (int): 1 or 2.
        groups (int): Groups of the 1x1 convs.
        first_conv_groups (int): Groups of the first 1x1 conv (1 on the
            24-channel stem output). Defaults to ``groups``.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalisation config. Defaults to
            ``dict(type='BN')``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 branch_channels: int,
                 stride: int,
                 groups: int,
                 first_conv_groups: Optional[int] = None,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if stride not in (1, 2):
            raise ValueError(f'stride must be 1 or 2, got {stride}')
        if stride == 1 and in_channels != branch_channels:
            raise ValueError(
                f'a stride-1 unit adds its input: in_channels '
                f'({in_channels}) must equal branch_channels '
                f'({branch_channels})')
        self.stride = stride
        self.first_conv_groups = first_conv_groups or groups
        mid_channels = branch_channels // 4
        self.conv1 = ConvModule(
            in_channels, mid_channels, 1, groups=self.first_conv_groups,
            conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.depthwise = ConvModule(
            mid_channels, mid_channels, 3, stride=stride, padding=1,
            groups=mid_channels, conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.conv3 = ConvModule(
            mid_channels, branch_channels, 1, groups=groups,
            conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None)

    def forward(self, x: Tensor) -> Tensor:
        """Branch plus (stride 1) or next to (stride 2) the shortcut.

        Returns:
            Tensor: The unit's output.
        """
        out = channel_shuffle(self.conv1(x), self.first_conv_groups)
        out = self.conv3(self.depthwise(out))
        if self.stride == 2:
            shortcut = F.avg_pool2d(x, 3, stride=2, padding=1)
            return F.relu(torch.cat([out, shortcut], dim=1))
        return F.relu(out + x)


@MODELS.register_module()
class CIFARShuffleNetV1(StagedBackbone):
    """ShuffleNet V1 (g = 3, width 1x) for 32x32 inputs, as in the CRD zoo.

    A 1x1 stem conv (24 channels) + BN + ReLU at full resolution, then
    three stages of 4, 8 and 4 units with 240, 480 and 960 output channels,
    each opening with a stride-2 unit: on a 32x32 input the stages give
    16x16, 8x8 and 4x4 maps (960 x 4 x 4 last).

    Args:
        out_indices (int | Sequence[int]): Stages (0..2) whose outputs are
            returned. Defaults to ``(2, )``.
        frozen_stages (int): See :class:`StagedBackbone`. Defaults to -1.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalisation config. Defaults to
            ``dict(type='BN')``.
        norm_eval (bool): BatchNorms in eval mode while training.
            Defaults to False.
        init_cfg (dict | list[dict]): Initialisation config. Defaults to
            Kaiming-normal convs and unit BatchNorms.
    """

    num_stages = 3
    groups = 3
    stem_channels = 24
    stage_channels = (240, 480, 960)
    stage_units = (4, 8, 4)

    def __init__(self,
                 out_indices=(2, ),
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 norm_eval: bool = False,
                 init_cfg=CIFAR_INIT_CFG) -> None:
        super().__init__(self.num_stages, out_indices, frozen_stages,
                         norm_eval, init_cfg)
        stem = ConvModule(3, self.stem_channels, 1, conv_cfg=conv_cfg,
                          norm_cfg=norm_cfg)
        stages, in_channels = [], self.stem_channels
        for channels, num_units in zip(self.stage_channels,
                                       self.stage_units):
            units = []
            for j in range(num_units):
                units.append(ShuffleUnitV1(
                    in_channels,
                    channels - in_channels if j == 0 else channels,
                    stride=2 if j == 0 else 1,
                    groups=self.groups,
                    # the stem output is too thin to split in groups
                    first_conv_groups=1
                    if in_channels == self.stem_channels else None,
                    conv_cfg=conv_cfg, norm_cfg=norm_cfg))
                in_channels = channels
            stages.append(nn.Sequential(*units))
        self.out_channels = in_channels
        self.set_layers(stem, stages)
