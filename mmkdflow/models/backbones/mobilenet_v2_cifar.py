"""MobileNet V2 (Sandler et al., 2018) for CIFAR in the CRD zoo's form
(``MobileNetV2``, i.e. ``mobile_half``: width 0.5, expansion 6, ReLU)."""
from typing import Optional

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmkdflow.registry import MODELS
from .cifar_base import CIFAR_INIT_CFG
from .staged_backbone import StagedBackbone


class ZooInvertedResidual(BaseModule):
    """Inverted residual of the CRD zoo: 1x1 expansion conv + BN + ReLU,
    3x3 depthwise conv + BN + ReLU, 1x1 linear conv + BN, and the input
    added when the stride is 1 and the channels stay.

    Unlike mmpretrain's ``InvertedResidual``, the expansion conv is kept at
    an expand ratio of 1 and the activation is ReLU, not ReLU6.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the depthwise conv (1 or 2).
        expand_ratio (int): Hidden channels = ``in_channels *
            expand_ratio``.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalisation config. Defaults to
            ``dict(type='BN')``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int,
                 expand_ratio: int,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if stride not in (1, 2):
            raise ValueError(f'stride must be 1 or 2, got {stride}')
        hidden = in_channels * expand_ratio
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            ConvModule(in_channels, hidden, 1, **common),
            ConvModule(hidden, hidden, 3, stride=stride, padding=1,
                       groups=hidden, **common),
            ConvModule(hidden, out_channels, 1, act_cfg=None, **common))

    def forward(self, x: Tensor) -> Tensor:
        """The block, plus the input where shapes allow.

        Returns:
            Tensor: The block's output.
        """
        out = self.conv(x)
        return x + out if self.use_residual else out


@MODELS.register_module()
class CIFARMobileNetV2(StagedBackbone):
    """MobileNet V2 for 32x32 inputs, as in the CRD zoo.

    A 3x3 stride-2 stem conv + BN + ReLU, seven stages of inverted
    residuals (t, c, n, s) = (1, 16, 1, 1), (T, 24, 2, 1), (T, 32, 3, 2),
    (T, 64, 4, 2), (T, 96, 3, 1), (T, 160, 3, 2), (T, 320, 1, 1) with c
    scaled by the width, and a last stage of 1x1 conv + BN + ReLU to 1280
    channels (``1280 * width`` above width 1). The zoo's ``MobileNetV2``
    (width 0.5, T = 6) gives 1280 x 2 x 2 on a 32x32 input.

    Args:
        widen_factor (float): Width multiplier. Defaults to 0.5.
        expand_ratio (int): T, expansion of stages 1..6. Defaults to 6.
        out_indices (int | Sequence[int]): Stages (0..7) whose outputs are
            returned. Defaults to ``(7, )``.
        frozen_stages (int): See :class:`StagedBackbone`. Defaults to -1.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalisation config. Defaults to
            ``dict(type='BN')``.
        norm_eval (bool): BatchNorms in eval mode while training.
            Defaults to False.
        init_cfg (dict | list[dict]): Initialisation config. Defaults to
            Kaiming-normal convs and unit BatchNorms.

    Raises:
        ValueError: For a non-positive ``widen_factor`` or
            ``expand_ratio``.
    """

    num_stages = 8
    #: (expand ratio or None for T, channels, blocks, first stride)
    arch_settings = [(1, 16, 1, 1), (None, 24, 2, 1), (None, 32, 3, 2),
                     (None, 64, 4, 2), (None, 96, 3, 1), (None, 160, 3, 2),
                     (None, 320, 1, 1)]

    def __init__(self,
                 widen_factor: float = 0.5,
                 expand_ratio: int = 6,
                 out_indices=(7, ),
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 norm_eval: bool = False,
                 init_cfg=CIFAR_INIT_CFG) -> None:
        if widen_factor <= 0 or expand_ratio < 1:
            raise ValueError(
                f'widen_factor must be positive and expand_ratio >= 1, got '
                f'{widen_factor} and {expand_ratio}')
        super().__init__(self.num_stages, out_indices, frozen_stages,
                         norm_eval, init_cfg)
        self.widen_factor = widen_factor
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        in_channels = int(32 * widen_factor)
        stem = ConvModule(3, in_channels, 3, stride=2, padding=1, **common)
        stages = []
        for ratio, channels, num_blocks, stride in self.arch_settings:
            out_channels = int(channels * widen_factor)
            blocks = []
            for j in range(num_blocks):
                blocks.append(ZooInvertedResidual(
                    in_channels, out_channels, stride if j == 0 else 1,
                    ratio or expand_ratio, **common))
                in_channels = out_channels
            stages.append(nn.Sequential(*blocks))
        last_channels = int(1280 * widen_factor) if widen_factor > 1 \
            else 1280
        stages.append(ConvModule(in_channels, last_channels, 1, **common))
        self.out_channels = last_channels
        self.set_layers(stem, stages)
