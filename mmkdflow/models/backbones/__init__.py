"""Backbones that the downstream packages lack (students of paper rows):
MobileNetV1 for ImageNet and the CIFAR distillation zoo of the CIFAR-100
tables."""
from .cifar_resnet import CIFARBasicBlock, CIFARResNet
from .mobilenet_v1 import DepthwiseSeparableConv, MobileNetV1
from .mobilenet_v2_cifar import CIFARMobileNetV2, ZooInvertedResidual
from .shufflenet_v1_cifar import CIFARShuffleNetV1, ShuffleUnitV1
from .shufflenet_v2_cifar import BasicUnitV2, CIFARShuffleNetV2, DownUnitV2
from .staged_backbone import StagedBackbone
from .vgg_cifar import CIFARVGG
from .wide_resnet_cifar import CIFARWideResNet, PreActBlock

__all__ = [
    'BasicUnitV2', 'CIFARBasicBlock', 'CIFARMobileNetV2', 'CIFARResNet',
    'CIFARShuffleNetV1', 'CIFARShuffleNetV2', 'CIFARVGG', 'CIFARWideResNet',
    'DepthwiseSeparableConv', 'DownUnitV2', 'MobileNetV1', 'PreActBlock',
    'ShuffleUnitV1', 'StagedBackbone', 'ZooInvertedResidual'
]
