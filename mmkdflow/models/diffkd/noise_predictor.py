"""DiffKD's light-weight noise-prediction networks Phi_theta(z_t, t)."""
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from ..utils import from_map, to_map
from .bottleneck import DiffusionBottleneck


class _TimeConditionedPredictor(BaseModule):
    """Shared part: ``h = x + E(t)`` with a learned table ``E`` of
    ``num_embeddings x C`` broadcast over H, W, then ``self.body(h)``.

    Inputs ``(B, C)`` are viewed as ``(B, C, 1, 1)`` and returned as
    ``(B, C)``; ``t`` is an int or one timestep per sample ``(B,)``.
    """

    def __init__(self, channels: int, num_embeddings: int,
                 init_cfg: Optional[dict]) -> None:
        super().__init__(init_cfg=init_cfg)
        if channels < 1:
            raise ValueError(f'channels must be >= 1, got {channels}')
        self.channels = channels
        self.time_embedding = nn.Embedding(num_embeddings, channels)
        self.body: nn.Module = nn.Identity()

    def forward(self, x: Tensor, t: Union[int, Tensor]) -> Tensor:
        """Predict the noise ``eps`` contained in ``x`` at timestep ``t``.

        Args:
            x (Tensor): Noisy sample ``(B, C)`` or ``(B, C, H, W)``.
            t (int | Tensor): Timestep (int, 0-d tensor, or ``(B,)``).

        Returns:
            The predicted noise, of ``x``'s shape.
        """
        x, was_vector = to_map(x)
        if x.shape[1] != self.channels:
            raise ValueError(f'{type(self).__name__} expects {self.channels} '
                             f'channels, got shape {tuple(x.shape)}')
        t = torch.as_tensor(t, device=x.device).long()
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        emb = self.time_embedding(t)[:, :, None, None]
        return from_map(self.body(x + emb), was_vector)


class FeatureNoisePredictor(_TimeConditionedPredictor):
    r"""Noise predictor for feature maps (the paper's "efficient DM", Fig. 3;
    trained with Eq. (4), ``L_diff = ||eps - Phi(z_t, t)||^2``)::

        Phi(x, t) = BN(conv1x1(Bottleneck(Bottleneck(x + E(t)))))

    with two :class:`DiffusionBottleneck` blocks (reduction 4, kernel 3).
    At ``C = 256``: 207,872 parameters in the convolutions and BatchNorms
    (2 x 70,784 + 65,792 + 512, the paper's 0.21 M) plus 327,680 in the
    1280 x 256 embedding table.

    Args:
        channels (int): Latent channels ``C``.
        reduction (int): Bottleneck reduction. Defaults to 4.
        num_embeddings (int): Rows of the timestep embedding table (>= T).
            Defaults to 1280.
        init_cfg (dict, optional): MMEngine initialisation config. Defaults to
            None.
    """

    def __init__(self, channels: int, reduction: int = 4,
                 num_embeddings: int = 1280,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(channels, num_embeddings, init_cfg)
        self.body = nn.Sequential(
            DiffusionBottleneck(channels, reduction),
            DiffusionBottleneck(channels, reduction),
            nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))


class VectorNoisePredictor(_TimeConditionedPredictor):
    r"""Noise predictor for logits (the paper's MLP variant, App. B.2), as
    1x1 convolutions so it also runs on spatial logits::

        Phi(x, t) = W4 ReLU(BN(W3 BN(W2 ReLU(BN(W1 (x + E(t)))))))

    with ``W1, W3: C -> 4C`` and ``W2, W4: 4C -> C`` (biased 1x1 convs) and
    no residual. ``(B, K)`` logits are viewed as ``(B, K, 1, 1)``.

    Args:
        channels (int): Number of classes / channels ``C``.
        expansion (int): Hidden width factor (4). Defaults to 4.
        num_embeddings (int): Rows of the timestep embedding table. Defaults to
            1280.
        init_cfg (dict, optional): MMEngine initialisation config. Defaults to
            None.
    """

    def __init__(self, channels: int, expansion: int = 4,
                 num_embeddings: int = 1280,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(channels, num_embeddings, init_cfg)
        hidden = channels * expansion
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1), nn.BatchNorm2d(channels),
            nn.Conv2d(channels, hidden, 1), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1))
