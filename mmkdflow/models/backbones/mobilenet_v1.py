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
from torch.nn.modules.batchnorm import _BatchNorm

from mmkdflow.registry import MODELS


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
class MobileNetV1(BaseModule):
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
        super().__init__(init_cfg=init_cfg)
        num_layers = len(self.arch_settings)
        if widen_factor <= 0:
            raise ValueError(
                f'widen_factor must be positive, got {widen_factor}')
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        out_indices = tuple(out_indices)
        if not out_indices or any(
                not isinstance(i, int) or not 0 <= i < num_layers
                for i in out_indices):
            raise ValueError(
                f'out_indices must be a non-empty list of ints in '
                f'0..{num_layers - 1}, got {out_indices}')
        if frozen_stages not in range(-1, num_layers + 1):
            raise ValueError(
                f'frozen_stages must be in -1..{num_layers}, got '
                f'{frozen_stages}')
        self.widen_factor = widen_factor
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        channels = self._scaled(32)
        self.conv1 = ConvModule(
            3, channels, 3, stride=2, padding=1, conv_cfg=conv_cfg,
            norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.layers: List[str] = []
        for i, blocks in enumerate(self.arch_settings):
            modules = []
            for out_channels, stride in blocks:
                out_channels = self._scaled(out_channels)
                modules.append(DepthwiseSeparableConv(
                    channels, out_channels, stride, conv_cfg=conv_cfg,
                    norm_cfg=norm_cfg, act_cfg=act_cfg))
                channels = out_channels
            name = f'layer{i + 1}'
            self.add_module(name, nn.Sequential(*modules))
            self.layers.append(name)
        self.out_channels = channels
        self._freeze_stages()

    def _scaled(self, channels: int) -> int:
        return max(8, int(round(channels * self.widen_factor)))

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Returns the outputs of the layers in ``out_indices``.

        Returns:
            tuple[Tensor]: One feature map per entry of ``out_indices``.
        """
        x = self.conv1(x)
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen = [self.conv1] + [
            getattr(self, name) for name in self.layers[:self.frozen_stages]
        ]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'MobileNetV1':
        """Train mode that keeps frozen stages (and, with ``norm_eval``,
        every BatchNorm) in eval mode.

        Returns:
            MobileNetV1: The module itself.
        """
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self
