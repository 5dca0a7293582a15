r"""The ``transformer`` meta-encoder: one pre-norm window-attention block."""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkdflow.registry import MODELS
from .meta_encoders import LayerNorm2d


def relative_position_index(window: int) -> Tensor:
    """``(w^2, w^2)`` index into a ``((2w-1)^2, heads)`` bias table: entry
    ``(p, q)`` is the table row of the offset between positions p and q.

    Returns:
        Tensor: The ``(w^2, w^2)`` long index into the bias table.
    """
    coords = torch.stack(torch.meshgrid(
        torch.arange(window), torch.arange(window), indexing='ij')).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + window - 1
    return rel[0] * (2 * window - 1) + rel[1]


@MODELS.register_module()
class MetaEncoderTransformer(nn.Module):
    r"""``transformer``: one pre-norm window-attention block with a
    relative position bias and a 1x1-conv FFN, shape ``B x C x H x W`` kept:

    .. math::

        x \leftarrow x + \mathrm{WMSA}(\mathrm{LN}(x)), \qquad
        x \leftarrow x + W_2\,\mathrm{GELU}(W_1\,\mathrm{LN}(x))

    WMSA splits the map into non-overlapping ``w x w`` windows and runs
    multi-head attention (``num_heads`` x ``head_dim``, 4 x 64) inside each,
    with :math:`\mathrm{softmax}(q k^\top / \sqrt{d} + B)`, :math:`B` a learned
    bias per head and relative offset (a ``(2w-1)^2 x heads`` table).
    ``w = window_size`` (7) when H is a multiple of it, else
    ``fallback_window_size`` (2); both tables exist so that one encoder
    shared across FPN levels of different sizes works. The map is
    zero-padded to a multiple of ``w`` (after the norm) and padded keys are
    masked out, so padding never changes real tokens' outputs.
    ``W_1: C -> ffn_channels`` (1024), ``W_2: ffn_channels -> C``.

    Parameters: ``4C`` (norms) ``+ 4 h d C + 3 h d`` (qkv, with bias)
    ``+ C`` (proj bias) ``+ 2 F C + F + C`` (FFN) ``+ h ((2w-1)^2 +
    (2w'-1)^2)`` (bias tables); 790,472 at C = 256.

    Args:
        channels (int): ``C``.
        num_heads (int): Attention heads. Defaults to 4.
        head_dim (int): Channels per head. Defaults to 64.
        window_size (int): Window used when H is a multiple of it. Defaults to
            7.
        fallback_window_size (int): Window used otherwise. Defaults to 2.
        ffn_channels (int): Hidden width of the FFN. Defaults to 1024.
    """

    def __init__(self, channels: int, num_heads: int = 4, head_dim: int = 64,
                 window_size: int = 7, fallback_window_size: int = 2,
                 ffn_channels: int = 1024) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.window_size = window_size
        self.fallback_window_size = fallback_window_size
        inner = num_heads * head_dim
        self.norm1 = LayerNorm2d(channels)
        self.qkv = nn.Linear(channels, 3 * inner)
        self.proj = nn.Linear(inner, channels)
        self.rel_bias = nn.ParameterDict()
        for w in dict.fromkeys((window_size, fallback_window_size)):
            table = nn.Parameter(torch.zeros((2 * w - 1)**2, num_heads))
            nn.init.trunc_normal_(table, std=0.02)
            self.rel_bias[str(w)] = table
            self.register_buffer(f'rel_index_{w}', relative_position_index(w),
                                 persistent=False)
        self.norm2 = LayerNorm2d(channels)
        self.ffn = nn.Sequential(
            nn.Conv2d(channels, ffn_channels, 1), nn.GELU(),
            nn.Conv2d(ffn_channels, channels, 1))

    def window_for(self, height: int) -> int:
        """The window used for a map of this height.

        Returns:
            int: The window size w.
        """
        return self.window_size if height % self.window_size == 0 \
            else self.fallback_window_size

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.ffn(self.norm2(x))

    def attention(self, x: Tensor) -> Tensor:
        """Window multi-head self-attention of a ``(B, C, H, W)`` map.

        Returns:
            Tensor: The attention output, ``(B, C, H, W)``.
        """
        b, c, h, w_ = x.shape
        win = self.window_for(h)
        pad_h, pad_w = (-h) % win, (-w_) % win
        x = F.pad(x, (0, pad_w, 0, pad_h))
        valid = F.pad(x.new_ones(1, 1, h, w_), (0, pad_w, 0, pad_h))
        tokens, grid = _to_windows(x, win)  # (B*nW, win^2, C)
        keep = _to_windows(valid, win)[0][..., 0] > 0  # (nW, win^2)
        n = tokens.shape[1]
        qkv = self.qkv(tokens).reshape(-1, n, 3, self.num_heads,
                                       self.head_dim).permute(2, 0, 3, 1, 4)
        table = self.rel_bias[str(win)]
        bias = table[getattr(self, f'rel_index_{win}').reshape(-1)]
        bias = bias.reshape(n, n, -1).permute(2, 0, 1)  # (heads, n, n)
        mask = torch.zeros_like(keep, dtype=bias.dtype).masked_fill(
            ~keep, float('-inf'))  # (nW, n) on keys
        mask = bias[None] + mask[:, None, None, :]  # (nW, heads, n, n)
        mask = mask.repeat(b, 1, 1, 1)
        out = F.scaled_dot_product_attention(
            qkv[0], qkv[1], qkv[2], attn_mask=mask.to(qkv.dtype))
        out = self.proj(out.transpose(1, 2).reshape(-1, n,
                                                    self.num_heads *
                                                    self.head_dim))
        out = _from_windows(out, grid, win, b)
        return out[:, :, :h, :w_]


def _to_windows(x: Tensor, win: int) -> Tuple[Tensor, Tuple[int, int]]:
    """``(B, C, H, W)`` -> ``(B * nH * nW, win * win, C)`` (H, W multiples
    of ``win``), batch-major."""
    b, c, h, w = x.shape
    nh, nw = h // win, w // win
    x = x.reshape(b, c, nh, win, nw, win).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b * nh * nw, win * win, c), (nh, nw)


def _from_windows(x: Tensor, grid: Tuple[int, int], win: int,
                  batch: int) -> Tensor:
    """Inverse of :func:`_to_windows`."""
    nh, nw = grid
    c = x.shape[-1]
    x = x.reshape(batch, nh, nw, win, win, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(batch, c, nh * win, nw * win)
