"""Wide ResNet (Zagoruyko & Komodakis, 2016) for CIFAR in the CRD zoo's
form: WRN-16-2, WRN-40-1, WRN-40-2, ..."""
from typing import Optional

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor

from mmkdflow.registry import MODELS
from .cifar_base import CIFAR_INIT_CFG
from .staged_backbone import StagedBackbone


class PreActBlock(BaseModule):
    """Pre-activation basic block: BN-ReLU-conv3x3, BN-ReLU-(dropout)-conv3x3.

    When the channels change, the shortcut is a 1x1 conv on the
    pre-activated input; otherwise it is the raw input.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the first conv and the shortcut.
            Defaults to 1.
        drop_rate (float): Dropout before the second conv. Defaults to 0.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalisation config. Defaults to
            ``dict(type='BN')``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 drop_rate: float = 0.0,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.norm1 = build_norm_layer(norm_cfg, in_channels)[1]
        self.conv1 = build_conv_layer(
            conv_cfg, in_channels, out_channels, 3, stride=stride,
            padding=1, bias=False)
        self.norm2 = build_norm_layer(norm_cfg, out_channels)[1]
        self.conv2 = build_conv_layer(
            conv_cfg, out_channels, out_channels, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.drop_rate = drop_rate
        self.shortcut = None
        if in_channels != out_channels:
            self.shortcut = build_conv_layer(
                conv_cfg, in_channels, out_channels, 1, stride=stride,
                bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Pre-activated residual branch plus shortcut.

        Returns:
            Tensor: The block's output.
        """
        activated = self.relu(self.norm1(x))
        identity = x if self.shortcut is None else self.shortcut(activated)
        out = self.relu(self.norm2(self.conv1(activated)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return self.conv2(out) + identity


@MODELS.register_module()
class CIFARWideResNet(StagedBackbone):
    """WRN-depth-k for 32x32 inputs, as in the CRD zoo.

    A 3x3 stem conv (16 channels, no norm: the blocks pre-activate), then
    three stages of n = (depth - 4) / 6 pre-activation blocks with
    16k, 32k and 64k channels at strides (1, 2, 2). The last stage ends
    with the network's final BN + ReLU, so its output (64k x 8 x 8 on a
    32x32 input) is the feature the classifier pools.

    Args:
        depth (int): 6n + 4 (16, 28, 40, ...). Defaults to 40.
        widen_factor (int): k. Defaults to 2.
        drop_rate (float): Dropout inside every block. Defaults to 0.
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
        ValueError: For a depth that is not 6n + 4 with n >= 1, a
            non-positive ``widen_factor`` or a ``drop_rate`` outside [0, 1).
    """

    num_stages = 3

    def __init__(self,
                 depth: int = 40,
                 widen_factor: int = 2,
                 drop_rate: float = 0.0,
                 out_indices=(2, ),
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 norm_eval: bool = False,
                 init_cfg=CIFAR_INIT_CFG) -> None:
        if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ValueError(f'depth must be 6n + 4 with n >= 1 (16, 28, '
                             f'40, ...), got {depth}')
        if not isinstance(widen_factor, int) or widen_factor < 1:
            raise ValueError(f'widen_factor must be a positive int, got '
                             f'{widen_factor}')
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f'drop_rate must be in [0, 1), got {drop_rate}')
        super().__init__(self.num_stages, out_indices, frozen_stages,
                         norm_eval, init_cfg)
        self.depth, self.widen_factor = depth, widen_factor
        blocks_per_stage = (depth - 4) // 6
        stem = build_conv_layer(conv_cfg, 3, 16, 3, padding=1, bias=False)
        stages, in_channels = [], 16
        for i, stride in enumerate((1, 2, 2)):
            out_channels = 16 * widen_factor * 2**i
            blocks = []
            for j in range(blocks_per_stage):
                blocks.append(PreActBlock(
                    in_channels, out_channels, stride if j == 0 else 1,
                    drop_rate, conv_cfg=conv_cfg, norm_cfg=norm_cfg))
                in_channels = out_channels
            stages.append(nn.Sequential(*blocks))
        # the network's final BN + ReLU closes the last stage
        stages[-1].add_module('final_norm',
                              build_norm_layer(norm_cfg, in_channels)[1])
        stages[-1].add_module('final_relu', nn.ReLU(inplace=True))
        self.out_channels = in_channels
        self.set_layers(stem, stages)
