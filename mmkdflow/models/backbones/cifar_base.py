"""What the CIFAR distillation-zoo backbones share: a stem, stages run in
order, the outputs of ``out_indices``, frozen stages and ``norm_eval``.

The zoo is the one of CRD (Tian et al., ICLR 2020; public code
HobbitLong/RepDistiller, ``models/``), reused by DKD, DIST, DiffKD and FM-KT
for their CIFAR-100 tables. Each backbone here has that zoo's layers and
parameter counts (tested in
``tests/test_models/test_backbones/test_cifar_backbones.py``) in
mmpretrain's backbone form: used with ``GlobalAveragePooling`` and a
``LinearClsHead``.
"""
from typing import List, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

#: Kaiming-normal (fan out) convolutions and unit BatchNorms, the zoo's init.
CIFAR_INIT_CFG = [
    dict(type='Kaiming', layer=['Conv2d'], mode='fan_out',
         nonlinearity='relu', distribution='normal'),
    dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
]


def normalise_out_indices(out_indices: Union[int, Sequence[int]],
                          num_stages: int) -> Tuple[int, ...]:
    """``out_indices`` as a tuple of non-negative stage indices.

    Returns:
        tuple[int]: The stage indices.

    Raises:
        ValueError: If it is empty or holds an index outside
            ``-num_stages .. num_stages - 1``.
    """
    if isinstance(out_indices, int):
        out_indices = (out_indices, )
    out_indices = tuple(out_indices)
    if not out_indices or any(
            not isinstance(i, int) or not -num_stages <= i < num_stages
            for i in out_indices):
        raise ValueError(
            f'out_indices must be a non-empty list of stage indices in '
            f'{-num_stages}..{num_stages - 1}, got {out_indices}')
    return tuple(i % num_stages for i in out_indices)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """ShuffleNet's channel shuffle: (B, g * c, H, W) viewed as
    (B, g, c, H, W), transposed to (B, c, g, H, W) and flattened back.

    Returns:
        Tensor: The shuffled tensor, of ``x``'s shape.
    """
    batch, channels, height, width = x.shape
    if channels % groups:
        raise ValueError(f'{channels} channels do not split into {groups} '
                         f'groups')
    x = x.view(batch, groups, channels // groups, height, width)
    return x.transpose(1, 2).reshape(batch, channels, height, width)


class CIFARBackbone(BaseModule):
    """Base of the CIFAR zoo backbones.

    A subclass builds its layers and hands them to :meth:`set_layers`: the
    stem (``self.stem``) and the stages (``self.layer1`` ...). ``forward``
    runs them in order and returns the outputs of the stages in
    ``out_indices`` as a tuple.

    Args:
        num_stages (int): Number of stages of the subclass.
        out_indices (int | Sequence[int]): Stages whose outputs are
            returned (negative indices count from the last stage).
        frozen_stages (int): ``-1`` freezes nothing, ``0`` the stem,
            ``i > 0`` the stem and stages ``0 .. i - 1`` (parameters fixed,
            norms in eval mode). Defaults to -1.
        norm_eval (bool): Keep every BatchNorm in eval mode while training.
            Defaults to False.
        init_cfg (dict | list[dict], optional): MMEngine initialisation
            config. Defaults to None.

    Raises:
        ValueError: For ``out_indices`` or ``frozen_stages`` out of range.
    """

    def __init__(self,
                 num_stages: int,
                 out_indices: Union[int, Sequence[int]],
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.out_indices = normalise_out_indices(out_indices, num_stages)
        if frozen_stages not in range(-1, num_stages + 1):
            raise ValueError(f'frozen_stages must be in -1..{num_stages}, '
                             f'got {frozen_stages}')
        self.num_stages = num_stages
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.stage_names: List[str] = []

    def set_layers(self, stem: nn.Module, stages: Sequence[nn.Module]
                   ) -> None:
        """Register the stem and the stages (``layer1`` .. ``layerN``)."""
        if len(stages) != self.num_stages:
            raise ValueError(f'{type(self).__name__} declared '
                             f'{self.num_stages} stages, got {len(stages)}')
        self.stem = stem
        self.stage_names = []
        for i, stage in enumerate(stages):
            name = f'layer{i + 1}'
            self.add_module(name, stage)
            self.stage_names.append(name)
        self._freeze_stages()

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """The outputs of the stages in ``out_indices``.

        Returns:
            tuple[Tensor]: One feature map per entry of ``out_indices``.
        """
        x = self.stem(x)
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen = [self.stem] + [
            getattr(self, name)
            for name in self.stage_names[:self.frozen_stages]
        ]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'CIFARBackbone':
        """Train mode that keeps frozen stages (and, with ``norm_eval``,
        every BatchNorm) in eval mode.

        Returns:
            CIFARBackbone: The module itself.
        """
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self
