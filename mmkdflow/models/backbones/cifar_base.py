"""What the CIFAR distillation-zoo backbones share beyond
:class:`~.staged_backbone.StagedBackbone`: the zoo's initialisation and
ShuffleNet's channel shuffle.

The zoo is the one of CRD (Tian et al., ICLR 2020; public code
HobbitLong/RepDistiller, ``models/``), reused by DKD, DIST, DiffKD and FM-KT
for their CIFAR-100 tables. Each backbone here has that zoo's layers and
parameter counts (tested in
``tests/test_models/test_backbones/test_cifar_backbones.py``) in
mmpretrain's backbone form: used with ``GlobalAveragePooling`` and a
``LinearClsHead``.
"""
from torch import Tensor

#: Kaiming-normal (fan out) convolutions and unit BatchNorms, the zoo's init.
CIFAR_INIT_CFG = [
    dict(type='Kaiming', layer=['Conv2d'], mode='fan_out',
         nonlinearity='relu', distribution='normal'),
    dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
]


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
