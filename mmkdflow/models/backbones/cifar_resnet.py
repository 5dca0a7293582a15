"""ResNet for CIFAR (He et al., 2016, Sec. 4.2) in the CRD zoo's form:
ResNet-20/32/56/110 and the wide ResNet-8x4 / ResNet-32x4."""
from typing import Optional

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmkdflow.registry import MODELS
from .cifar_base import CIFAR_INIT_CFG
from .staged_backbone import StagedBackbone


class CIFARBasicBlock(BaseModule):
    """Two 3x3 conv + BN, ReLU between them and after the residual add.

    The shortcut is a 1x1 conv + BN when the stride or the channels change,
    the identity otherwise.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the first conv and the shortcut.
            Defaults to 1.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalisation config. Defaults to
            ``dict(type='BN')``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.conv1 = ConvModule(
            in_channels, out_channels, 3, stride=stride, padding=1,
            conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.conv2 = ConvModule(
            out_channels, out_channels, 3, padding=1, conv_cfg=conv_cfg,
            norm_cfg=norm_cfg, act_cfg=None)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = ConvModule(
                in_channels, out_channels, 1, stride=stride,
                conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """Residual branch plus shortcut, then ReLU.

        Returns:
            Tensor: The block's output.
        """
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)


@MODELS.register_module()
class CIFARResNet(StagedBackbone):
    """ResNet of depth 6n + 2 for 32x32 inputs, as in the CRD zoo.

    A 3x3 stem conv + BN + ReLU (``stem_channels``), then three stages of
    n basic blocks with ``base_channels`` x (1, 2, 4) channels at strides
    (1, 2, 2). On a 32x32 input the stages give 32x32, 16x16 and 8x8 maps.

    ============ ===== ============== ============= ================
    zoo name     depth stem_channels base_channels last stage
    ============ ===== ============== ============= ================
    resnet20     20    16             16            64 x 8 x 8
    resnet56     56    16             16            64 x 8 x 8
    resnet110    110   16             16            64 x 8 x 8
    resnet8x4    8     32             64            256 x 8 x 8
    resnet32x4   32    32             64            256 x 8 x 8
    ============ ===== ============== ============= ================

    Args:
        depth (int): 6n + 2. Defaults to 20.
        stem_channels (int): Channels of the stem conv. Defaults to 16.
        base_channels (int): Channels of the first stage. Defaults to 16.
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

    Raises:
        ValueError: For a depth that is not 6n + 2 with n >= 1, or
            non-positive channels.
    """

    num_stages = 3

    def __init__(self,
                 depth: int = 20,
                 stem_channels: int = 16,
                 base_channels: int = 16,
                 out_indices=(2, ),
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 norm_eval: bool = False,
                 init_cfg=CIFAR_INIT_CFG) -> None:
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f'depth must be 6n + 2 with n >= 1 (8, 20, 32, 56, 110, '
                f'...), got {depth}')
        if stem_channels < 1 or base_channels < 1:
            raise ValueError(
                f'stem_channels and base_channels must be positive, got '
                f'{stem_channels} and {base_channels}')
        super().__init__(self.num_stages, out_indices, frozen_stages,
                         norm_eval, init_cfg)
        self.depth = depth
        blocks_per_stage = (depth - 2) // 6
        stem = ConvModule(3, stem_channels, 3, padding=1,
                          conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        stages, in_channels = [], stem_channels
        for i, stride in enumerate((1, 2, 2)):
            out_channels = base_channels * 2**i
            blocks = []
            for j in range(blocks_per_stage):
                blocks.append(CIFARBasicBlock(
                    in_channels, out_channels, stride if j == 0 else 1,
                    conv_cfg=conv_cfg, norm_cfg=norm_cfg))
                in_channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.out_channels = in_channels
        self.set_layers(stem, stages)
