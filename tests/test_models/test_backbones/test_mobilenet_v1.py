"""mmkdflow.MobileNetV1: shapes, parameter count, freezing, registry."""
import pytest
import torch
import torch.nn as nn
from utils import n_params

import mmkdflow  # noqa: F401
from mmkdflow.models.backbones import MobileNetV1


def test_parameter_count_of_the_standard_network():
    backbone = MobileNetV1()
    # 3.2 M in the backbone, 4.2 M with a 1000-class linear head (paper)
    assert n_params(backbone) == 3_206_976
    assert n_params(backbone) + 1024 * 1000 + 1000 == 4_231_976
    assert backbone.out_channels == 1024


def test_output_shapes_and_strides():
    backbone = MobileNetV1(out_indices=(0, 1, 2, 3, 4))
    outs = backbone(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [
        (1, 64, 32, 32), (1, 128, 16, 16), (1, 256, 8, 8), (1, 512, 4, 4),
        (1, 1024, 2, 2)]
    last = MobileNetV1()(torch.randn(2, 3, 64, 64))
    assert isinstance(last, tuple) and len(last) == 1
    assert last[0].shape == (2, 1024, 2, 2)


def test_widen_factor():
    backbone = MobileNetV1(widen_factor=0.5, out_indices=(4, ))
    assert backbone.out_channels == 512
    assert backbone(torch.randn(2, 3, 32, 32))[0].shape == (2, 512, 1, 1)


def test_frozen_stages_and_norm_eval():
    backbone = MobileNetV1(frozen_stages=2, norm_eval=True)
    backbone.train()
    for module in (backbone.conv1, backbone.layer1, backbone.layer2):
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
    assert all(p.requires_grad for p in backbone.layer3.parameters())
    assert backbone.layer3.training
    bns = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)


@pytest.mark.parametrize('kwargs', [
    dict(out_indices=(5, )), dict(out_indices=()), dict(frozen_stages=6),
    dict(frozen_stages=-2), dict(widen_factor=0.0)])
def test_invalid_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        MobileNetV1(**kwargs)


def test_builds_inside_an_mmpretrain_classifier():
    from mmpretrain.registry import MODELS
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='mmkdflow.MobileNetV1'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000,
                  in_channels=1024)))
    assert isinstance(model.backbone, MobileNetV1)
    assert n_params(model) == 4_231_976
    model.init_weights()
    logits = model(torch.randn(2, 3, 32, 32), mode='tensor')
    assert logits.shape == (2, 1000)
