"""Adaptive noise matching (ANM): how much noise the student needs."""
from typing import Optional

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from ..utils import to_map
from .bottleneck import DiffusionBottleneck


class _GammaHead(BaseModule):
    """Shared part: ``gamma = softmax(Linear_{C->2}(avgpool(body(x))))[0]``.

    Pooling over H, W makes the head work on feature maps, on ``(B, K)``
    logits (viewed as ``(B, K, 1, 1)``) and on spatial logits alike.
    """

    def __init__(self, channels: int, init_cfg: Optional[dict]) -> None:
        super().__init__(init_cfg=init_cfg)
        if channels < 1:
            raise ValueError(f'channels must be >= 1, got {channels}')
        self.channels = channels
        self.body: nn.Module = nn.Identity()
        self.fc = nn.Linear(channels, 2)

    def forward(self, x: Tensor) -> Tensor:
        """Return one ``gamma`` in (0, 1) per sample, shape ``(B,)``."""
        x, _ = to_map(x)
        if x.shape[1] != self.channels:
            raise ValueError(f'{type(self).__name__} expects {self.channels} '
                             f'channels, got shape {tuple(x.shape)}')
        pooled = self.body(x).mean(dim=(2, 3))
        return self.fc(pooled).softmax(dim=1)[:, 0]


class FeatureNoiseAdapter(_GammaHead):
    r"""ANM for feature maps (paper Sec. 3.3). Predicts ``gamma`` for the
    initial noisy sample of Eq. (8),
    ``Z_T = gamma * Z_stu + (1 - gamma) * eps``::

        gamma = softmax(Linear_{C->2}(avgpool(Bottleneck_{r=8}(x))))[0]

    Args:
        channels (int): Latent channels ``C``.
        reduction (int): Bottleneck reduction (8). Defaults to 8.
        init_cfg (dict, optional): MMEngine initialisation config. Defaults to
            None.
    """

    def __init__(self, channels: int, reduction: int = 8,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(channels, init_cfg)
        self.body = DiffusionBottleneck(channels, reduction)


class VectorNoiseAdapter(_GammaHead):
    r"""ANM for logits (paper Sec. 3.3, Eq. (8)), 1x1 convolutions::

        h = BN(W2 ReLU(BN(W1 x)))      W1: C -> 2C, W2: 2C -> C
        gamma = softmax(Linear_{C->2}(avgpool(h)))[0]

    Args:
        channels (int): Number of classes / channels ``C``.
        init_cfg (dict, optional): MMEngine initialisation config. Defaults to
            None.
    """

    def __init__(self, channels: int, init_cfg: Optional[dict] = None
                 ) -> None:
        super().__init__(channels, init_cfg)
        self.body = nn.Sequential(
            nn.Conv2d(channels, 2 * channels, 1),
            nn.BatchNorm2d(2 * channels), nn.ReLU(inplace=True),
            nn.Conv2d(2 * channels, channels, 1), nn.BatchNorm2d(channels))
