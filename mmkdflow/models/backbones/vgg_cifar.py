"""VGG with BatchNorm for CIFAR in the CRD zoo's form (no fully connected
layers but the classifier): VGG-8, VGG-11, VGG-13, VGG-16, VGG-19."""
from typing import Dict, List, Optional

import torch.nn as nn
from mmcv.cnn import ConvModule

from mmkdflow.registry import MODELS
from .cifar_base import CIFAR_INIT_CFG
from .staged_backbone import StagedBackbone


@MODELS.register_module()
class CIFARVGG(StagedBackbone):
    """VGG-BN of five stages of 3x3 conv + BN + ReLU, as in the CRD zoo.

    Stages 1..3 start with a 2x2 max-pool; stage 4 does not (on 32x32
    inputs the zoo pools there only for 64x64 inputs), so on a 32x32 input
    the stages give 32, 16, 8, 4 and 4 pixel maps and the last one
    (512 x 4 x 4) is the feature the classifier pools. The convolutions
    keep their bias next to the BatchNorm, as in the zoo.

    ===== ========================================
    depth convs per stage (channels)
    ===== ========================================
    8     64 | 128 | 256 | 512 | 512
    11    64 | 128 | 256 x2 | 512 x2 | 512 x2
    13    64 x2 | 128 x2 | 256 x2 | 512 x2 | 512 x2
    16    64 x2 | 128 x2 | 256 x3 | 512 x3 | 512 x3
    19    64 x2 | 128 x2 | 256 x4 | 512 x4 | 512 x4
    ===== ========================================

    Args:
        depth (int): One of 8, 11, 13, 16, 19. Defaults to 13.
        out_indices (int | Sequence[int]): Stages (0..4) whose outputs are
            returned. Defaults to ``(4, )``.
        frozen_stages (int): See :class:`StagedBackbone`. Defaults to -1.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalisation config. Defaults to
            ``dict(type='BN')``.
        norm_eval (bool): BatchNorms in eval mode while training.
            Defaults to False.
        init_cfg (dict | list[dict]): Initialisation config. Defaults to
            Kaiming-normal convs and unit BatchNorms.

    Raises:
        ValueError: For an unknown depth.
    """

    num_stages = 5
    arch_settings: Dict[int, List[List[int]]] = {
        8: [[64], [128], [256], [512], [512]],
        11: [[64], [128], [256] * 2, [512] * 2, [512] * 2],
        13: [[64] * 2, [128] * 2, [256] * 2, [512] * 2, [512] * 2],
        16: [[64] * 2, [128] * 2, [256] * 3, [512] * 3, [512] * 3],
        19: [[64] * 2, [128] * 2, [256] * 4, [512] * 4, [512] * 4],
    }
    #: stages that start with a 2x2 max-pool
    pooled_stages = (1, 2, 3)

    def __init__(self,
                 depth: int = 13,
                 out_indices=(4, ),
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 norm_eval: bool = False,
                 init_cfg=CIFAR_INIT_CFG) -> None:
        if depth not in self.arch_settings:
            raise ValueError(f'depth must be one of '
                             f'{sorted(self.arch_settings)}, got {depth}')
        super().__init__(self.num_stages, out_indices, frozen_stages,
                         norm_eval, init_cfg)
        self.depth = depth
        stages, in_channels = [], 3
        for i, widths in enumerate(self.arch_settings[depth]):
            layers = [nn.MaxPool2d(2, 2)] if i in self.pooled_stages else []
            for width in widths:
                layers.append(ConvModule(
                    in_channels, width, 3, padding=1, bias=True,
                    conv_cfg=conv_cfg, norm_cfg=norm_cfg))
                in_channels = width
            stages.append(nn.Sequential(*layers))
        self.out_channels = in_channels
        # no separate stem: the first stage reads the image
        self.set_layers(nn.Identity(), stages)
