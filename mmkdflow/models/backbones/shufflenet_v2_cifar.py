"""ShuffleNet V2 (Ma et al., 2018) for CIFAR in the CRD zoo's form
(``ShuffleV2``: 1x1 stem, no max-pool)."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmkdflow.registry import MODELS
from .cifar_base import CIFAR_INIT_CFG, channel_shuffle
from .staged_backbone import StagedBackbone


class DownUnitV2(BaseModule):
    """Stride-2 ShuffleNet V2 unit: two branches, each giving half of
    ``out_channels``, concatenated and shuffled (2 groups).

    Left: 3x3 depthwise conv (stride 2) + BN, 1x1 conv + BN + ReLU. Right:
    1x1 conv + BN + ReLU, 3x3 depthwise conv (stride 2) + BN, 1x1 conv +
    BN + ReLU.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels (even).
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalisation config. Defaults to
            ``dict(type='BN')``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        half = out_channels // 2
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.left = nn.Sequential(
            ConvModule(in_channels, in_channels, 3, stride=2, padding=1,
                       groups=in_channels, act_cfg=None, **common),
            ConvModule(in_channels, half, 1, **common))
        self.right = nn.Sequential(
            ConvModule(in_channels, half, 1, **common),
            ConvModule(half, half, 3, stride=2, padding=1, groups=half,
                       act_cfg=None, **common),
            ConvModule(half, half, 1, **common))

    def forward(self, x: Tensor) -> Tensor:
        """Both branches, concatenated and shuffled.

        Returns:
            Tensor: The unit's output.
        """
        out = torch.cat([self.left(x), self.right(x)], dim=1)
        return channel_shuffle(out, 2)


class BasicUnitV2(BaseModule):
    """Stride-1 ShuffleNet V2 unit: the first half of the channels passes
    through, the second half goes through 1x1 conv + BN + ReLU, 3x3
    depthwise conv + BN, 1x1 conv + BN + ReLU; then concatenation and
    shuffle (2 groups).

    Args:
        channels (int): Input and output channels (even).
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalisation config. Defaults to
            ``dict(type='BN')``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 channels: int,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.half = channels // 2
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.branch = nn.Sequential(
            ConvModule(self.half, self.half, 1, **common),
            ConvModule(self.half, self.half, 3, padding=1, groups=self.half,
                       act_cfg=None, **common),
            ConvModule(self.half, self.half, 1, **common))

    def forward(self, x: Tensor) -> Tensor:
        """Split, transform the second half, concatenate and shuffle.

        Returns:
            Tensor: The unit's output.
        """
        passed, transformed = x[:, :self.half], x[:, self.half:]
        out = torch.cat([passed, self.branch(transformed)], dim=1)
        return channel_shuffle(out, 2)


@MODELS.register_module()
class CIFARShuffleNetV2(StagedBackbone):
    """ShuffleNet V2 for 32x32 inputs, as in the CRD zoo (``ShuffleV2`` is
    ``widen_factor=1.0``).

    A 1x1 stem conv (24 channels) + BN + ReLU at full resolution, three
    stages of one stride-2 unit and 3, 7, 3 stride-1 units, and a last
    stage of 1x1 conv + BN + ReLU. At width 1.0 on a 32x32 input the stages
    give 116 x 16 x 16, 232 x 8 x 8, 464 x 4 x 4 and 1024 x 4 x 4 (the
    feature the classifier pools).

    Args:
        widen_factor (float): One of 0.5, 1.0, 1.5, 2.0. Defaults to 1.0.
        out_indices (int | Sequence[int]): Stages (0..3) whose outputs are
            returned. Defaults to ``(3, )``.
        frozen_stages (int): See :class:`StagedBackbone`. Defaults to -1.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalisation config. Defaults to
            ``dict(type='BN')``.
        norm_eval (bool): BatchNorms in eval mode while training.
            Defaults to False.
        init_cfg (dict | list[dict]): Initialisation config. Defaults to
            Kaiming-normal convs and unit BatchNorms.

    Raises:
        ValueError: For an unknown ``widen_factor``.
    """

    num_stages = 4
    stem_channels = 24
    stage_units = (3, 7, 3)
    #: widen factor -> channels of the three unit stages and the last conv
    arch_settings: Dict[float, Tuple[int, int, int, int]] = {
        0.5: (48, 96, 192, 1024),
        1.0: (116, 232, 464, 1024),
        1.5: (176, 352, 704, 1024),
        2.0: (224, 488, 976, 2048),
    }

    def __init__(self,
                 widen_factor: float = 1.0,
                 out_indices=(3, ),
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 norm_eval: bool = False,
                 init_cfg=CIFAR_INIT_CFG) -> None:
        if widen_factor not in self.arch_settings:
            raise ValueError(f'widen_factor must be one of '
                             f'{sorted(self.arch_settings)}, got '
                             f'{widen_factor}')
        super().__init__(self.num_stages, out_indices, frozen_stages,
                         norm_eval, init_cfg)
        self.widen_factor = widen_factor
        *unit_channels, last_channels = self.arch_settings[widen_factor]
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        stem = ConvModule(3, self.stem_channels, 1, **common)
        stages, in_channels = [], self.stem_channels
        for channels, num_units in zip(unit_channels, self.stage_units):
            units = [DownUnitV2(in_channels, channels, **common)]
            units += [BasicUnitV2(channels, **common)
                      for _ in range(num_units)]
            stages.append(nn.Sequential(*units))
            in_channels = channels
        stages.append(ConvModule(in_channels, last_channels, 1, **common))
        self.out_channels = last_channels
        self.set_layers(stem, stages)
