r"""Time embedding of FM-KT: sinusoidal features of the fractional time."""
import math
from typing import Dict, Union

import torch
import torch.nn as nn
from torch import Tensor


def sinusoidal_embedding(t: Tensor, dim: int,
                         max_period: float = 1e4) -> Tensor:
    r"""Sinusoidal features of a (fractional) time, as in transformers and
    diffusion models.

    With :math:`h = \lfloor dim / 2 \rfloor` and frequencies
    :math:`\omega_k = \text{max\_period}^{-k/h}` (:math:`k = 0 .. h-1`):

    .. math::

        \text{emb}(t) = [\cos(\omega_0 t), .., \cos(\omega_{h-1} t),
                         \sin(\omega_0 t), .., \sin(\omega_{h-1} t)]

    padded with one zero when ``dim`` is odd. FM-KT feeds the fractional
    :math:`t_i = i / N \in (0, 1]` itself (not an integer step index).

    Args:
        t (Tensor): Times of shape ``(B,)``.
        dim (int): Embedding size.
        max_period (float): Longest period. Defaults to 10000.0.

    Returns:
        ``(B, dim)`` float32 features.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(
        half, dtype=torch.float32, device=t.device) / max(half, 1))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb


class TimeEmbedding(nn.Module):
    r"""Sinusoidal embedding of t followed by a small MLP.

    ``mode='linear'`` (feature flows): :math:`W\,\text{emb}(t) + b` with
    ``Linear(C, C)``. ``mode='mlp'`` (logit flows): ``Linear(C, C)``, ReLU,
    ``Linear(C, C)``. The result is added to the Euler state before the
    meta-encoder, so it is shaped to broadcast over it: ``(B, C, 1, 1)`` for a
    4-D state, ``(B, C)`` for a 2-D one.

    Args:
        channels (int): ``C``, the state's channels (also the sinusoid size).
        mode (str): ``'linear'`` or ``'mlp'``. Defaults to 'linear'.
        max_period (float): Longest sinusoid period. Defaults to 10000.0.
    """

    def __init__(self, channels: int, mode: str = 'linear',
                 max_period: float = 1e4) -> None:
        super().__init__()
        if mode not in ('linear', 'mlp'):
            raise ValueError(f"mode must be 'linear' or 'mlp', got {mode!r}")
        self.channels, self.mode, self.max_period = channels, mode, max_period
        if mode == 'linear':
            self.proj = nn.Linear(channels, channels)
        else:
            self.proj = nn.Sequential(
                nn.Linear(channels, channels), nn.ReLU(inplace=True),
                nn.Linear(channels, channels))

    @property
    def _weight(self) -> Tensor:
        """The first Linear's weight: the device and dtype to compute in."""
        return self.proj.weight if self.mode == 'linear' else \
            self.proj[0].weight

    def forward(self, t: Union[float, Tensor], batch_size: int = 1,
                ndim: int = 4) -> Tensor:
        """Embed ``t`` (a float, a 0-d tensor or a ``(B,)`` tensor).

        A float is written on the device with ``torch.full`` (a fill, not a
        host-to-device copy, so no CUDA synchronisation).

        Args:
            t (float | Tensor): The time(s).
            batch_size (int): Rows to produce when ``t`` is a scalar (the one
                embedding is computed once and expanded). Defaults to 1.
            ndim (int): Dimensions of the state the result is added to.
                Defaults to 4.

        Returns:
            ``(B, C)`` followed by ``ndim - 2`` singleton dimensions.
        """
        weight = self._weight
        if isinstance(t, Tensor):
            t = t.to(device=weight.device, dtype=torch.float32)
        else:
            t = torch.full((), float(t), device=weight.device)
        rows = t.reshape(-1)
        emb = self.proj(sinusoidal_embedding(rows, self.channels,
                                             self.max_period).to(weight.dtype))
        if t.dim() == 0:
            emb = emb.expand(batch_size, -1)
        return emb.reshape(emb.shape + (1, ) * (ndim - 2))

    def steps(self, num_steps: int, ndim: int = 4) -> Dict[float, Tensor]:
        r"""The embeddings of every time of an N-step trajectory at once.

        One MLP call on the N times :math:`t_i = i / N` (i = N..1) instead
        of one per step and level.

        Args:
            num_steps (int): N.
            ndim (int): Dimensions of the state the result is added to.
                Defaults to 4.

        Returns:
            ``{t_i: (1, C, 1, ..)}`` keyed by the float ``i / N`` (the same
            expression the sampler uses), each broadcasting over the batch.
        """
        weight = self._weight
        index = torch.arange(num_steps, 0, -1, device=weight.device,
                             dtype=torch.float32)
        emb = self.proj(sinusoidal_embedding(
            index / num_steps, self.channels,
            self.max_period).to(weight.dtype))
        emb = emb.reshape(emb.shape + (1, ) * (ndim - 2))
        return {i / num_steps: emb[row:row + 1]
                for row, i in enumerate(range(num_steps, 0, -1))}
