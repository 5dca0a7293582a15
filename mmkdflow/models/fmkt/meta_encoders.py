"""Meta-encoders of FM-KT: shape-preserving ``(B, C, H, W)`` networks, the
:math:`E` of step (2) of :mod:`mmkdflow.models.fmkt`.

Each is registered in ``mmkdflow.registry.MODELS`` under a ``MetaEncoder*``
class name. The spec's short names (``conv``, ``resconv``, ``mlp``,
``transformer``, ``convnext``, ``conv_det``) are *not* registered as such:
bare names like ``conv`` or ``mlp`` would sit in the shared ``mmkdflow``
scope next to every connector and loss (and shadow lookups falling back to
parent registries). They are mapped by :data:`META_ENCODERS` and
:func:`build_meta_encoder` instead, which accepts either spelling.

Your own meta-encoder: any ``nn.Module`` class whose constructor takes
``channels`` and whose forward keeps the shape ``B x C x H x W``,
registered with ``@mmkdflow.registry.MODELS.register_module()``; a config
then names it like the others (``meta_encoder=dict(type='MyEncoder',
...)``). A class attribute ``channels_last = True`` says it computes in
channels-last memory (the flow then hands it channels-last states).

Parameter counts (``C`` channels, biases included):

* ``conv``: ``18 C^2 + 2 C``; ``resconv``: ``18 C^2 + 4 C``;
* ``mlp`` (k blocks, hidden ``rC``): ``k (2 r C^2 + r C + 3 C)``;
* ``convnext``: ``2 (8 C^2 + 58 C)`` (one LayerNorm per block, as
  released); ``conv_det``: ``21 C^2 + 9 C``;
* ``transformer``: see :class:`MetaEncoderTransformer`.
"""
from typing import Dict, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkdflow.registry import MODELS


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, H, W)`` tensor, per
    position (the "channels-first" LayerNorm of ConvNeXt)."""

    def forward(self, x: Tensor) -> Tensor:
        # For a channels-last x both permutes are free views; otherwise
        # layer_norm makes one contiguous copy.
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2)


def conv3x3(channels: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, padding=1, bias=bias)


@MODELS.register_module()
class MetaEncoderConv(nn.Sequential):
    """``conv``: SiLU, 3x3 conv, GroupNorm(1), SiLU, 3x3 conv.

    No bias in the convolutions and no residual connection.
    ``18 C^2 + 2 C`` parameters.

    Args:
        channels (int): ``C``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(
            nn.SiLU(), conv3x3(channels), nn.GroupNorm(1, channels),
            nn.SiLU(), conv3x3(channels))


class _Residual(nn.Module):
    """``x + body(x)``."""

    def __init__(self, *body: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(*body)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


@MODELS.register_module()
class MetaEncoderResConv(nn.Sequential):
    """``resconv``: 2 x residual ``x + GN(conv3x3(SiLU(x)))``.

    GroupNorm(1) follows each convolution, so the convolutions have no
    bias (it would be cancelled by the norm). ``18 C^2 + 4 C`` parameters.

    Args:
        channels (int): ``C``.
        num_blocks (int): Residual blocks (2 in the spec). Defaults to 2.
    """

    def __init__(self, channels: int, num_blocks: int = 2) -> None:
        super().__init__(*[
            _Residual(nn.SiLU(), conv3x3(channels),
                      nn.GroupNorm(1, channels)) for _ in range(num_blocks)
        ])


class _MLPBlock(nn.Module):
    """``LN_C(x + conv1x1(ReLU(conv1x1(x))))``."""

    def __init__(self, channels: int, hidden: int, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.norm = LayerNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.fc2(F.relu(self.fc1(x))))


@MODELS.register_module()
class MetaEncoderMLP(nn.Sequential):
    """``mlp``: k x [1x1 conv, ReLU, 1x1 conv, + residual, LayerNorm over C].

    k = 1 for CIFAR, 2 for DeiT in the released recipes. The hidden width
    (not given by the spec) is ``hidden_ratio * C``.
    ``k (2 r C^2 + r C + 3 C)`` parameters (``r = hidden_ratio``) with conv
    biases, ``k (2 r C^2 + 2 C)`` without.

    Deliberate difference from the released code: its two convolutions
    have no bias; ours do by default (``bias=True``), ``bias=False``
    reproduces the released encoder.

    Args:
        channels (int): ``C``.
        num_blocks (int): k. Defaults to 1.
        hidden_ratio (int): Hidden width over ``C``. Defaults to 1.
        bias (bool): Biases in the two 1x1 convolutions. Defaults to True.
    """

    def __init__(self, channels: int, num_blocks: int = 1,
                 hidden_ratio: int = 1, bias: bool = True) -> None:
        super().__init__(*[
            _MLPBlock(channels, int(hidden_ratio * channels), bias)
            for _ in range(num_blocks)
        ])


class ConvNeXtBlock(nn.Module):
    r"""ConvNeXt block with a LayerNorm after the residual add:

    .. math::

        y = \gamma \odot W_2\,\mathrm{GELU}(W_1\,\mathrm{LN}(\mathrm{DW}_{7
            \times 7}(x))), \qquad x' = \mathrm{LN'}(x + y)

    with :math:`W_1: C \to 4C`, :math:`W_2: 4C \to C` (with biases) and the
    layer scale :math:`\gamma \in \mathbb{R}^C` initialised to
    ``layer_scale_init`` (1e-6).

    ``shared_norm=True`` (default, the released structure): :math:`LN' =
    LN`, one LayerNorm used twice, ``8 C^2 + 58 C`` parameters.
    ``shared_norm=False``: a second LayerNorm of its own after the residual
    add (2C more parameters, free to drift apart from the first).

    Deliberate difference from the released code: there the layer scale
    multiplies through a detached view, so it never trains and stays at
    1e-6 and the block collapses to about a LayerNorm of its input. Here
    :math:`\gamma` is an ordinary trainable parameter; nothing reproduces the
    freeze.

    Args:
        channels (int): ``C``.
        layer_scale_init (float): Initial value of :math:`\gamma`. Defaults to
            1e-06.
        shared_norm (bool): One LayerNorm before the MLP and after the residual
            add (released) instead of two. Defaults to True.
    """

    def __init__(self, channels: int, layer_scale_init: float = 1e-6,
                 shared_norm: bool = True) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 7, padding=3,
                                groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.fc1 = nn.Linear(channels, 4 * channels)
        self.fc2 = nn.Linear(4 * channels, channels)
        self.gamma = nn.Parameter(
            layer_scale_init * torch.ones(channels))
        self.shared_norm = bool(shared_norm)
        self.post_norm = None if self.shared_norm else nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        # One memory layout throughout: channels-last. The depthwise 7x7 is
        # faster in it on CPU (tools/benchmark.py), its output viewed as
        # (B, H, W, C) is contiguous for the LayerNorms and the Linears, and
        # the result viewed back as (B, C, H, W) is channels-last without a
        # copy. A contiguous (NCHW) input costs one copy here, none in later
        # blocks.
        x = x.contiguous(memory_format=torch.channels_last)
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.fc2(F.gelu(self.fc1(self.norm(y))))
        y = x.permute(0, 2, 3, 1) + self.gamma * y
        post_norm = self.norm if self.shared_norm else self.post_norm
        return post_norm(y).permute(0, 3, 1, 2)


@MODELS.register_module()
class MetaEncoderConvNeXt(nn.Sequential):
    """``convnext`` (detection): ``num_blocks`` (2) :class:`ConvNeXtBlock`.

    ``2 (8 C^2 + 58 C)`` parameters with the released single LayerNorm per
    block (``shared_norm=True``), ``2 (8 C^2 + 60 C)`` with two.

    Args:
        channels (int): ``C``.
        num_blocks (int): Blocks (2 in the spec). Defaults to 2.
        layer_scale_init (float): Initial layer scale (trainable). Defaults to
            1e-06.
        shared_norm (bool): See :class:`ConvNeXtBlock`. Defaults to True.
    """

    #: The blocks compute in channels-last memory and return channels-last
    #: tensors; callers may hand in channels-last inputs to save a copy.
    channels_last = True

    def __init__(self, channels: int, num_blocks: int = 2,
                 layer_scale_init: float = 1e-6,
                 shared_norm: bool = True) -> None:
        super().__init__(*[
            ConvNeXtBlock(channels, layer_scale_init, shared_norm)
            for _ in range(num_blocks)
        ])


@MODELS.register_module()
class MetaEncoderConvDet(nn.Sequential):
    """``conv_det`` (detection): 2 x residual [1x1 conv, LN, ReLU, 3x3 conv,
    LN] followed by a 1x1 conv.

    LN is the channels-first :class:`LayerNorm2d`. The convolutions followed
    by a LayerNorm have no bias; the final 1x1 conv has one.
    ``21 C^2 + 9 C`` parameters.

    Args:
        channels (int): ``C``.
        num_blocks (int): Residual blocks (2 in the spec). Defaults to 2.
    """

    def __init__(self, channels: int, num_blocks: int = 2) -> None:
        blocks = [
            _Residual(
                nn.Conv2d(channels, channels, 1, bias=False),
                LayerNorm2d(channels), nn.ReLU(inplace=True),
                conv3x3(channels), LayerNorm2d(channels))
            for _ in range(num_blocks)
        ]
        super().__init__(*blocks, nn.Conv2d(channels, channels, 1))


#: The spec's short names -> registered class names.
META_ENCODERS: Dict[str, str] = {
    'conv': 'MetaEncoderConv',
    'resconv': 'MetaEncoderResConv',
    'mlp': 'MetaEncoderMLP',
    'transformer': 'MetaEncoderTransformer',
    'convnext': 'MetaEncoderConvNeXt',
    'conv_det': 'MetaEncoderConvDet',
}


def build_meta_encoder(meta_encoder: Union[str, dict, nn.Module],
                       channels: int, **kwargs) -> nn.Module:
    """Build a meta-encoder for ``channels`` channels.

    Args:
        meta_encoder (str | dict | nn.Module): A short name (``'convnext'``), a
            registered name (``'MetaEncoderConvNeXt'``, or a class of your own
            registered in mmkdflow's ``MODELS``), a
            ``dict(type=<either>, **kwargs)`` or a module (returned unchanged).
        channels (int): ``C``, passed as ``channels=`` unless the dict sets it.
        **kwargs: Extra constructor arguments.

    Returns:
        nn.Module: The meta-encoder, mapping ``C`` channels to ``C``.

    Raises:
        KeyError: For a name that is neither a short name nor registered,
            listing the short names.
    """
    if isinstance(meta_encoder, nn.Module):
        return meta_encoder
    from ..utils import build_mmkdflow_module
    cfg = dict(meta_encoder) if isinstance(meta_encoder, dict) else dict(
        type=meta_encoder)
    cfg.update(kwargs)
    name = cfg.get('type')
    cfg['type'] = META_ENCODERS.get(name, name)
    if isinstance(cfg['type'], str) and MODELS.get(cfg['type']) is None:
        raise KeyError(f'unknown meta-encoder {name!r}; known: '
                       f'{", ".join(META_ENCODERS)} (or their registered '
                       f'names {", ".join(META_ENCODERS.values())}), or '
                       f'register your own with '
                       f'@mmkdflow.registry.MODELS.register_module()')
    cfg.setdefault('channels', channels)
    return build_mmkdflow_module(cfg)
