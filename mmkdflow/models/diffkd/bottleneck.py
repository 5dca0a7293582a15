"""The ResNet bottleneck block used by DiffKD's denoiser and noise adapter."""
from typing import Optional

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor


class DiffusionBottleneck(BaseModule):
    r"""ResNet bottleneck with an identity shortcut and no ReLU after the add.

    With ``m = max(1, C // reduction)``::

        y = x + BN(conv1x1_{m->C}(ReLU(BN(conv3x3_{m->m}(
                ReLU(BN(conv1x1_{C->m}(x))))))))

    Every convolution has a bias (as ``nn.Conv2d`` by default), so at
    ``C = 256, reduction = 4`` the block has 70,784 parameters:
    ``(256*64 + 64) + (64*64*9 + 64) + (64*256 + 256)`` in the convolutions and
    ``2*64 + 2*64 + 2*256`` in the BatchNorms. The output is not passed
    through a ReLU, so the block can produce negative values (noise).

    Args:
        channels (int): Input and output channels ``C``.
        reduction (int): Channel reduction of the inner 3x3 convolution.
            Defaults to 4.
        init_cfg (dict, optional): MMEngine initialisation config. Defaults to
            None.
    """

    def __init__(self, channels: int, reduction: int = 4,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if channels < 1 or reduction < 1:
            raise ValueError(f'channels and reduction must be >= 1, got '
                             f'{channels}, {reduction}')
        mid = max(1, channels // reduction)
        self.block = nn.Sequential(
            nn.Conv2d(channels, mid, 1), nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1), nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, channels, 1), nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)
