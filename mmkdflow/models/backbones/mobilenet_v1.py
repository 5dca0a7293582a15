"""MobileNetV1 (Howard et al., 2017) as an mmpretrain-style backbone.

mmpretrain 1.2.0 ships MobileNetV2/V3 but no MobileNetV1, the student of
the ResNet-50 -> MobileNetV1 ImageNet rows of the KD papers. It is
registered in mmkdflow's ``MODELS``, so an mmpretrain model config reaches
it with ``backbone=dict(type='mmkdflow.MobileNetV1')``.
"""
from typing import List, Sequence, Tuple

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmkdflow.registry import MODELS
from .staged_backbone import StagedBackbone


class DepthwiseSeparableConv(BaseModule):
    """3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU.

    Args:
        in_channels (int): Input channels (also the depthwise groups).
        out_channels (int): Output channels of the pointwise conv.
        stride (int): Stride of the depthwise conv.
        conv_cfg (dict, optional): Convolution config (``None``:
            ``nn.Conv2d``). Defaults to None.
        norm_cfg (dict): Normalisation config. Defaults to dict(type='BN').
        act_cfg (dict): Activation config. Defaults to dict(type='ReLU').
        init_cfg (dict | list[dict], optional): MMEngine initialisation
            config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int,
                 conv_cfg=None,
                 norm_cfg=dict(type='BN'),
                 act_cfg=dict(type='ReLU'),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.depthwise = ConvModule(
            in_channels, in_channels, 3, stride=stride, padding=1,
            groups=in_channels, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.pointwise = ConvModule(
            in_channels, out_channels, 1, conv_cfg=conv_cfg,
            norm_cfg=norm_cfg, act_cfg=act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        """Depthwise then pointwise.

        Returns:
            Tensor: The block's output.
        """
        return self.pointwise(self.depthwise(x))


@MODELS.register_module()
class MobileNetV1(StagedBackbone):
    """MobileNetV1 backbone (width multiplier 1.0 by default).

    A 3x3 stride-2 stem conv (32 channels) followed by 13 depthwise
    separable convolutions, grouped here into five layers by output stride:

    ====== =========================== ======== ========
    layer  blocks (out channels/stride) channels stride
    ====== =========================== ======== ========
    0      64/1                         64       2
    1      128/2, 128/1                 128      4
    2      256/2, 256/1                 256      8
    3      512/2, 512/1 x 5             512      16
    4      1024/2, 1024/1               1024     32
    ====== =========================== ======== ========

    At width 1.0 the backbone has 3,206,976 parameters (convolutions and
    BatchNorms); with global pooling and a 1000-class linear head the
    classifier has 4,231,976 (the paper's 4.2 M).

    Args:
        widen_factor (float): Width multiplier applied to every layer's
            channels. Defaults to 1.0.
        out_indices (Sequence[int]): Layers (0..4) whose outputs are returned,
            as a tuple. Defaults to (4,).
        frozen_stages (int): ``-1`` freezes nothing, ``0`` the stem, ``i > 0``
            the stem and layers ``0..i-1`` (parameters fixed, norms in eval).
            Defaults to -1.
        conv_cfg (dict, optional): Convolution config (``None``:
            ``nn.Conv2d``). Defaults to None.
        norm_cfg (dict): Normalisation config. Defaults to dict(type='BN').
        act_cfg (dict): Activation config. Defaults to dict(type='ReLU').
        norm_eval (bool): Keep every BatchNorm in eval mode while training.
            Defaults to False.
        init_cfg (dict | list[dict]): MMEngine initialisation config.
            Defaults to [dict(type='Kaiming', layer=['Conv2d']),
            dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])].

    Raises:
        ValueError: For a non-positive ``widen_factor`` or indices out of
            range.
    """

    # (out_channels, stride) of each depthwise separable conv, per layer.
    arch_settings: List[List[Tuple[int, int]]] = [
        [(64, 1)],
        [(128, 2), (128, 1)],
        [(256, 2), (256, 1)],
        [(512, 2)] + [(512, 1)] * 5,
        [(1024, 2), (1024, 1)],
    ]

    def __init__(self,
                 widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (4, ),
                 frozen_stages: int = -1,
                 conv_cfg=None,
                 norm_cfg=dict(type='BN'),
                 act_cfg=dict(type='ReLU'),
                 norm_eval: bool = False,
                 init_cfg=[
                     dict(type='Kaiming', layer=['Conv2d']),
                     dict(type='Constant', val=1,
                          layer=['_BatchNorm', 'GroupNorm'])
                 ]) -> None:
        if widen_factor <= 0:
            raise ValueError(
                f'widen_factor must be positive, got {widen_factor}')
        super().__init__(len(self.arch_settings), out_indices, frozen_stages,
                         norm_eval, init_cfg)
        self.widen_factor = widen_factor
        channels = self._scaled(32)
        stem = ConvModule(
            3, channels, 3, stride=2, padding=1, conv_cfg=conv_cfg,
            norm_cfg=norm_cfg, act_cfg=act_cfg)
        stages = []
        for blocks in self.arch_settings:
            modules = []
            for out_channels, stride in blocks:
                out_channels = self._scaled(out_channels)
                modules.append(DepthwiseSeparableConv(
                    channels, out_channels, stride, conv_cfg=conv_cfg,
                    norm_cfg=norm_cfg, act_cfg=act_cfg))
                channels = out_channels
            stages.append(nn.Sequential(*modules))
        self.out_channels = channels
        self.set_layers(stem, stages, stem_name='conv1')

    def _scaled(self, channels: int) -> int:
        return max(8, int(round(channels * self.widen_factor)))
