"""The CIFAR distillation-zoo backbones: parameter counts equal the
reference implementations, stage shapes on 32x32 inputs, gradients, the
shipped model files, arguments."""
import glob
import os.path as osp

import pytest
import torch
import torch.nn as nn
from utils import config_path, n_params
from mmengine.config import Config

import mmkdflow  # noqa: F401
from mmkdflow.models.backbones import (CIFARResNet, CIFARShuffleNetV1,
                                       CIFARShuffleNetV2, CIFARVGG,
                                       CIFARWideResNet)
from mmkdflow.models.backbones.cifar_base import channel_shuffle

# zoo name -> (backbone config, pooled channels, parameters of backbone +
# Linear(C, 100), stage output shapes on a 32x32 input).
# The parameter counts are those of the reference architectures of the CRD
# zoo, HobbitLong/RepDistiller models/ (commit b84f547; the same files back
# megvii-research/mdistiller's CIFAR models), built with num_classes=100 and
# counted as sum(p.numel() for p in model.parameters()). Rounded, they are
# the sizes the KD papers print (e.g. ResNet-8x4 1.23 M, ResNet-32x4
# 7.43 M, WRN-40-2 2.26 M, VGG-13 9.46 M, ShuffleNetV1 0.95 M,
# ShuffleNetV2 1.36 M, MobileNetV2 0.81 M).
ZOO = {
    'resnet20': (dict(type='CIFARResNet', depth=20), 64, 278_324,
                 [(16, 32, 32), (32, 16, 16), (64, 8, 8)]),
    'resnet32': (dict(type='CIFARResNet', depth=32), 64, 472_756,
                 [(16, 32, 32), (32, 16, 16), (64, 8, 8)]),
    'resnet56': (dict(type='CIFARResNet', depth=56), 64, 861_620,
                 [(16, 32, 32), (32, 16, 16), (64, 8, 8)]),
    'resnet110': (dict(type='CIFARResNet', depth=110), 64, 1_736_564,
                  [(16, 32, 32), (32, 16, 16), (64, 8, 8)]),
    'resnet8x4': (dict(type='CIFARResNet', depth=8, stem_channels=32,
                       base_channels=64), 256, 1_233_540,
                  [(64, 32, 32), (128, 16, 16), (256, 8, 8)]),
    'resnet32x4': (dict(type='CIFARResNet', depth=32, stem_channels=32,
                        base_channels=64), 256, 7_433_860,
                   [(64, 32, 32), (128, 16, 16), (256, 8, 8)]),
    'wrn_16_2': (dict(type='CIFARWideResNet', depth=16, widen_factor=2),
                 128, 703_284, [(32, 32, 32), (64, 16, 16), (128, 8, 8)]),
    'wrn_40_1': (dict(type='CIFARWideResNet', depth=40, widen_factor=1),
                 64, 569_780, [(16, 32, 32), (32, 16, 16), (64, 8, 8)]),
    'wrn_40_2': (dict(type='CIFARWideResNet', depth=40, widen_factor=2),
                 128, 2_255_156, [(32, 32, 32), (64, 16, 16), (128, 8, 8)]),
    'vgg8': (dict(type='CIFARVGG', depth=8), 512, 3_965_028,
             [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4),
              (512, 4, 4)]),
    'vgg13': (dict(type='CIFARVGG', depth=13), 512, 9_462_180,
              [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4),
               (512, 4, 4)]),
    'shufflenet_v1': (dict(type='CIFARShuffleNetV1'), 960, 949_258,
                      [(240, 16, 16), (480, 8, 8), (960, 4, 4)]),
    'shufflenet_v2': (dict(type='CIFARShuffleNetV2'), 1024, 1_355_528,
                      [(116, 16, 16), (232, 8, 8), (464, 4, 4),
                       (1024, 4, 4)]),
    'mobilenet_v2': (dict(type='CIFARMobileNetV2'), 1280, 812_836,
                     [(8, 16, 16), (12, 16, 16), (16, 8, 8), (32, 4, 4),
                      (48, 4, 4), (80, 2, 2), (160, 2, 2), (1280, 2, 2)]),
}
# RepDistiller's ResNet50 (models/resnetv2.py), counted the same way: the
# teacher of the ResNet-50 -> MobileNetV2 row, mmpretrain's ResNet_CIFAR.
RESNET50_CIFAR100 = 23_705_252


def build_backbone(name: str, **kwargs) -> nn.Module:
    from mmkdflow.registry import MODELS
    cfg = dict(ZOO[name][0], **kwargs)
    return MODELS.build(cfg)


def classifier(backbone: dict, channels: int) -> nn.Module:
    """An mmpretrain ImageClassifier: backbone, GAP, Linear(C, 100)."""
    from mmpretrain.registry import MODELS
    return MODELS.build(dict(
        type='ImageClassifier', backbone=backbone,
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=100,
                  in_channels=channels)))


def zoo_classifier(name: str) -> nn.Module:
    backbone, channels = ZOO[name][:2]
    backbone = dict(backbone, type='mmkdflow.' + backbone['type'])
    return classifier(backbone, channels)


@pytest.mark.parametrize('name', sorted(ZOO))
def test_parameter_count_equals_the_reference(name):
    model = zoo_classifier(name)
    assert n_params(model) == ZOO[name][2]
    channels = ZOO[name][1]
    assert model.backbone.out_channels == channels
    assert n_params(model.backbone) == ZOO[name][2] - channels * 100 - 100


def test_resnet50_teacher_is_the_reference_resnet50():
    model = classifier(dict(type='ResNet_CIFAR', depth=50), 2048)
    assert n_params(model) == RESNET50_CIFAR100


@pytest.mark.parametrize('name', sorted(ZOO))
def test_stage_shapes_on_a_32x32_input(name):
    shapes = ZOO[name][3]
    backbone = build_backbone(name, out_indices=tuple(range(len(shapes))))
    backbone.init_weights()
    backbone.eval()
    with torch.no_grad():
        outs = backbone(torch.randn(2, 3, 32, 32))
    assert isinstance(outs, tuple)
    assert [tuple(o.shape) for o in outs] == [(2, *s) for s in shapes]
    last = build_backbone(name)(torch.randn(2, 3, 32, 32))
    assert len(last) == 1 and tuple(last[0].shape) == (2, *shapes[-1])


@pytest.mark.parametrize('name', sorted(ZOO))
def test_every_parameter_gets_a_gradient(name):
    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    model = zoo_classifier(name)
    model.init_weights()
    model.train()
    samples = [DataSample().set_gt_label(i) for i in (3, 97, 0, 51)]
    losses = model(torch.randn(4, 3, 32, 32), samples, mode='loss')
    assert torch.isfinite(losses['loss'])
    losses['loss'].backward()
    missing = [k for k, p in model.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    # the first convolution, deepest in the graph, still learns
    first = next(p for k, p in model.named_parameters()
                 if k.startswith('backbone.'))
    assert first.grad.abs().sum() > 0


def test_shipped_model_files_are_the_zoo_models():
    files = sorted(glob.glob(config_path('_base_', 'models', 'cifar100',
                                         '*.py')))
    assert [osp.basename(f)[:-3] for f in files] == sorted(ZOO)
    from mmpretrain.registry import MODELS
    for file in files:
        cfg = Config.fromfile(file)
        assert cfg.default_scope == 'mmpretrain'
        name = osp.basename(file)[:-3]
        assert n_params(MODELS.build(cfg.model)) == ZOO[name][2], file
        with open(file) as f:
            assert f'{ZOO[name][2]:,}' in f.readline(), file


def test_channel_shuffle_interleaves_the_groups():
    x = torch.arange(6.).view(1, 6, 1, 1)
    # groups (0 1 2) (3 4 5) -> 0 3 1 4 2 5
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    with pytest.raises(ValueError):
        channel_shuffle(x, 4)


def test_zoo_details_that_set_the_counts():
    # VGG keeps the conv bias next to BatchNorm
    vgg = CIFARVGG(depth=8)
    convs = [m for m in vgg.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5 and all(c.bias is not None for c in convs)
    # ShuffleNetV1's first unit reads the 24-channel stem without groups
    v1 = CIFARShuffleNetV1()
    assert v1.layer1[0].conv1.conv.groups == 1
    assert v1.layer1[1].conv1.conv.groups == 3
    # WRN's last stage ends with the network's final BN + ReLU
    wrn = CIFARWideResNet(depth=16, widen_factor=2)
    assert isinstance(wrn.layer3[-2], nn.BatchNorm2d)
    assert isinstance(wrn.layer3[-1], nn.ReLU)
    assert CIFARShuffleNetV2(widen_factor=0.5).out_channels == 1024


def test_frozen_stages_and_norm_eval():
    backbone = CIFARResNet(depth=20, frozen_stages=2, norm_eval=True)
    backbone.train()
    for module in (backbone.stem, backbone.layer1, backbone.layer2):
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
    assert all(p.requires_grad for p in backbone.layer3.parameters())
    bns = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert build_backbone('resnet20', out_indices=(-1, )).out_indices == (2, )


@pytest.mark.parametrize('build', [
    lambda: CIFARResNet(depth=21),
    lambda: CIFARResNet(depth=20, base_channels=0),
    lambda: CIFARResNet(out_indices=(3, )),
    lambda: CIFARResNet(out_indices=()),
    lambda: CIFARResNet(frozen_stages=4),
    lambda: CIFARWideResNet(depth=41),
    lambda: CIFARWideResNet(widen_factor=0),
    lambda: CIFARWideResNet(drop_rate=1.0),
    lambda: CIFARVGG(depth=10),
    lambda: CIFARShuffleNetV2(widen_factor=0.75),
])
def test_invalid_arguments_raise(build):
    with pytest.raises(ValueError):
        build()
