r"""FM-KT's velocity networks: step (2) of :mod:`mmkdflow.models.fmkt`,
:math:`v(x, t) = E(x + \text{emb}(t))`, and its identity-start variant
:math:`v = g \odot E(x + \text{emb}(t))`.

Memory and speed options (outputs and gradients equal to the plain path
up to float rounding), plain attributes also settable after construction:

* ``checkpoint=True``: each call runs under
  :func:`torch.utils.checkpoint.checkpoint` (non-reentrant), so the
  backward pass recomputes that step's meta-encoder instead of storing its
  activations (a ConvNeXt block holds about a dozen, four of them ``4C``
  wide): peak memory grows with N only by the Euler states, velocities and
  predictions.
* ``compile=True``: :math:`E(x + \text{emb})` runs through
  :func:`torch.compile` (:mod:`~mmkdflow.models.utils.compile`). The
  compiled function is shared by all fields and takes the time embedding
  as a tensor input, so N never causes a recompilation. Graphs are
  static-shaped, one per level shape (and per train/eval mode), all
  compiled in the first step of a run: keep the input size fixed within a
  run (a fixed padded batch shape) when compiling. Dynamic shapes buy
  nothing here, as inductor's convolutions specialise the spatial sizes
  anyway. Off by default; ``tools/benchmark.py`` measures both paths.
"""
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.checkpoint import checkpoint as _checkpoint

from ..utils import CompileOption, compile_options, compiled
from .sampler import VelocityFn
from .time_embedding import TimeEmbedding


def _encode(meta_encoder: nn.Module, x: Tensor, embedding: Tensor) -> Tensor:
    r""":math:`E(x + \text{emb}(t))`, the unit :func:`torch.compile` sees."""
    return meta_encoder(x + embedding)


class VelocityField(nn.Module):
    r"""The FM-KT velocity network :math:`v(x, t) = E(x + \text{emb}(t))`.

    Args:
        meta_encoder (nn.Module): The meta-encoder :math:`E` (shape
            preserving).
        time_embed (TimeEmbedding): The time embedding (output broadcast-added
            to x).
        checkpoint (bool): Recompute the activations of :math:`E` in the
            backward pass, per call (per Euler step; see the module docstring).
            Defaults to False.
        compile (bool | dict, optional): Run :math:`E(x + \text{emb})` through
            :func:`torch.compile`: ``True`` or a dict of its options (see
            :func:`~mmkdflow.models.utils.compile_options`). Defaults to False.
    """

    def __init__(self, meta_encoder: nn.Module,
                 time_embed: TimeEmbedding,
                 checkpoint: bool = False,
                 compile: CompileOption = False) -> None:
        super().__init__()
        self.meta_encoder = meta_encoder
        self.time_embed = time_embed
        self.checkpoint = bool(checkpoint)
        compile_options(compile)  # validate now, not at the first step
        self.compile = compile

    def forward(self, x: Tensor, t: float,
                time_embedding: Optional[Tensor] = None) -> Tensor:
        r""":math:`E(x + \text{emb}(t))`.

        Args:
            x (Tensor): The Euler state.
            t (float): The time.
            time_embedding (Tensor, optional): ``emb(t)`` if already computed
                (e.g. by :meth:`TimeEmbedding.steps`, once for all levels).
                Defaults to None.

        Returns:
            Tensor: The velocity, of ``x``'s shape.
        """
        if time_embedding is None:
            time_embedding = self.time_embed(t, 1, x.dim())
        if self.checkpoint and torch.is_grad_enabled():
            return _checkpoint(self.encode, x, time_embedding,
                               use_reentrant=False)
        return self.encode(x, time_embedding)

    def encode(self, x: Tensor, time_embedding: Tensor) -> Tensor:
        r""":math:`E(x + \text{emb})`, compiled with the ``compile``
        option (no checkpointing here; see :meth:`forward`).

        Returns:
            Tensor: The velocity, of ``x``'s shape.
        """
        options = compile_options(self.compile)
        if options is None:
            return _encode(self.meta_encoder, x, time_embedding)
        return compiled(_encode, options)(self.meta_encoder, x,
                                          time_embedding)

    def trajectory(self, num_steps: int, ndim: int) -> VelocityFn:
        """The velocity function of one N-step trajectory, with the N time
        embeddings computed up front in one batched call (share it across
        the levels of one forward); a time outside the table is embedded
        on the fly.

        Returns:
            VelocityFn: A function ``(x, t) -> v``.
        """
        table = self.time_embed.steps(num_steps, ndim)
        return lambda x, t: self(x, t, table.get(t))


class GatedVelocityField(VelocityField):
    r""":math:`v(x, t) = g \odot E(x + \text{emb}(t))` with a per-channel
    gain :math:`g` initialised to 0 (the identity start of
    :class:`~mmkdflow.models.fmkt.EulerFlow`).

    Args:
        meta_encoder (nn.Module): The meta-encoder :math:`E`.
        time_embed (TimeEmbedding): The time embedding.
        channels (int): ``C``, the size of :math:`g`.
        **options: ``checkpoint`` / ``compile`` of :class:`VelocityField`.
    """

    def __init__(self, meta_encoder: nn.Module, time_embed: TimeEmbedding,
                 channels: int, **options) -> None:
        super().__init__(meta_encoder, time_embed, **options)
        self.velocity_gain = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, t: float,
                time_embedding: Optional[Tensor] = None) -> Tensor:
        v = super().forward(x, t, time_embedding)
        gain = self.velocity_gain.to(v.dtype)
        return v * gain.reshape(gain.shape + (1, ) * (v.dim() - 2))
