"""Distillation points on transformer outputs: ``(B, N, C)`` tokens of a
ViT layer or its final norm, the ``(B, C)`` class token of the backbone and
Swin's ``(B, C, H, W)`` stages train, and wrong shapes are refused when the
distiller is built, with the messages CNN points get."""
import pytest
import torch
from utils import cls_batch

from mmkdflow.models import Distiller


def tiny_vit(embed_dims: int = 32, num_layers: int = 2) -> dict:
    """A real mmpretrain ViT classifier: 32 x 32 images, 8 x 8 patches
    (16 patch tokens and the class token)."""
    return dict(
        _scope_='mmpretrain', type='ImageClassifier',
        backbone=dict(
            type='VisionTransformer', img_size=32, patch_size=8,
            arch=dict(embed_dims=embed_dims, num_layers=num_layers,
                      num_heads=2, feedforward_channels=2 * embed_dims)),
        neck=None,
        head=dict(type='VisionTransformerClsHead', num_classes=10,
                  in_channels=embed_dims),
        data_preprocessor=dict(
            type='ClsDataPreprocessor', num_classes=10, mean=[127.5] * 3,
            std=[64.0] * 3, to_rgb=True))


def tiny_swin(embed_dims: int = 16) -> dict:
    """A real mmpretrain Swin classifier with four stages of one block,
    every stage an output."""
    return dict(
        _scope_='mmpretrain', type='ImageClassifier',
        backbone=dict(
            type='SwinTransformer', img_size=32, out_indices=(0, 1, 2, 3),
            pad_small_map=True,  # stages of 4 x 4 and smaller at 32 x 32
            arch=dict(embed_dims=embed_dims, depths=[1, 1, 1, 1],
                      num_heads=[1, 1, 1, 1])),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10,
                  in_channels=8 * embed_dims),
        data_preprocessor=dict(
            type='ClsDataPreprocessor', num_classes=10, mean=[127.5] * 3,
            std=[64.0] * 3, to_rgb=True))


def distiller(student, teacher, saved_teacher, **points) -> Distiller:
    ckpt, _ = saved_teacher(teacher)
    return Distiller(student=student, teacher=teacher, teacher_ckpt=ckpt,
                     distill_points=points)


def train_step(model: Distiller) -> dict:
    inputs, samples = cls_batch(4, 32)
    model.train()
    losses = model(inputs, samples, mode='loss')
    distill = {k: v for k, v in losses.items() if k.startswith('distill.')}
    assert distill and all(torch.isfinite(v) for v in distill.values())
    sum(distill.values()).backward()
    return distill


def adapter(s: int, t: int) -> dict:
    return dict(type='ConvAdapter', in_channels=s, out_channels=t)


# ------------------------------------------------------------- training
def test_token_points_train_through_an_adapter(saved_teacher):
    model = distiller(
        tiny_vit(32), tiny_vit(64), saved_teacher,
        layer=dict(student='backbone.layers.1', teacher='backbone.layers.1',
                   connector=adapter(32, 64), loss=dict(type='MSELoss')),
        final=dict(student='backbone.ln1', teacher='backbone.ln1',
                   connector=dict(adapter(32, 64), with_bn=True),
                   loss=dict(type='MSELoss')))
    shapes = []
    hook = model.student.backbone.layers[1].register_forward_hook(
        lambda m, a, out: shapes.append(tuple(out.shape)) and None)
    train_step(model)
    hook.remove()
    assert shapes == [(4, 17, 32)]  # (B, N, C) tokens
    for conn in model.connectors.values():
        assert all(p.grad is not None for p in conn.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.student.backbone.layers[0].parameters())


def test_class_token_point_trains(saved_teacher):
    model = distiller(
        tiny_vit(32), tiny_vit(64), saved_teacher,
        cls=dict(student='backbone', teacher='backbone', index=-1,
                 connector=adapter(32, 64), loss=dict(type='MSELoss')),
        logits=dict(student='head.layers.head', teacher='head.layers.head',
                    loss=dict(type='KDLoss', temperature=4.0)))
    assert model.student.backbone.out_type == 'cls_token'
    assert set(train_step(model)) == {'distill.cls.loss',
                                      'distill.logits.loss'}
    assert model.student.backbone.cls_token.grad.abs().sum() > 0


def test_vitkd_points_need_no_connector(saved_teacher):
    mimic = dict(type='ViTKDLoss', student_dims=32, teacher_dims=64)
    model = distiller(
        tiny_vit(32), tiny_vit(64), saved_teacher,
        mimic=dict(student='backbone.layers.0', teacher='backbone.layers.0',
                   loss=mimic),
        gen=dict(student='backbone.ln1', teacher='backbone.ln1',
                 loss=dict(mimic, mode='generate')))
    train_step(model)
    assert model.distill_losses['gen'].mask_token.grad is not None


def test_swin_stage_points_train(saved_teacher):
    model = distiller(
        tiny_swin(16), tiny_swin(16), saved_teacher,
        stages=dict(student='backbone', teacher='backbone',
                    index=(0, 1, 2, 3), loss=dict(type='MSELoss')))
    inputs, _ = cls_batch(2, 32)
    outs = model.student.backbone(inputs)
    assert [tuple(o.shape[1:]) for o in outs] == [
        (16, 8, 8), (32, 4, 4), (64, 2, 2), (128, 1, 1)]
    train_step(model)


def test_adapter_names_token_channels_at_the_first_step(saved_teacher):
    model = distiller(
        tiny_vit(32), tiny_vit(64), saved_teacher,
        layer=dict(student='backbone.layers.1', teacher='backbone.layers.1',
                   connector=adapter(48, 64), loss=dict(type='MSELoss')))
    with pytest.raises(ValueError, match=r'expects 48 student channels but '
                       r'got a tensor of shape \(4, 17, 32\); set '
                       r'in_channels=32'):
        train_step(model)


# ----------------------------------------------------- build-time errors
@pytest.mark.parametrize('path', ['backbone.layers.1', 'backbone.ln1',
                                  'backbone'])
def test_token_channel_mismatch_is_refused_at_build(saved_teacher, path):
    with pytest.raises(ValueError, match=(
            rf"point 'tok': student '{path}' gives 32 channels but teacher "
            rf"'{path}' gives 64; add a connector such as dict\("
            r"type='ConvAdapter', in_channels=32, out_channels=64\)")):
        distiller(tiny_vit(32), tiny_vit(64), saved_teacher,
                  tok=dict(student=path, teacher=path,
                           loss=dict(type='MSELoss')))


def test_class_token_index_out_of_range_is_refused(saved_teacher):
    with pytest.raises(IndexError, match=r"index \[1\] selects entry 1 of "
                       r"student 'backbone', which returns 1 tensors "
                       r'\(VisionTransformer\)'):
        distiller(tiny_vit(32), tiny_vit(32), saved_teacher,
                  cls=dict(student='backbone', teacher='backbone', index=1,
                           loss=dict(type='MSELoss')))


def test_swin_stage_channels_are_checked_per_entry(saved_teacher):
    with pytest.raises(ValueError, match=(
            r"point 'stages' \(entry 1\): student 'backbone' gives 128 "
            r"channels but teacher 'backbone' gives 256")):
        distiller(tiny_swin(16), tiny_swin(32), saved_teacher,
                  stages=dict(student='backbone', teacher='backbone',
                              student_index=(2, 3), teacher_index=(1, 3),
                              loss=dict(type='MSELoss')))


def test_swin_stage_index_out_of_range_is_refused(saved_teacher):
    with pytest.raises(IndexError, match=r"index \[3, 4\] selects entry 4 "
                       r"of student 'backbone', which returns 4 tensors "
                       r'\(SwinTransformer\)'):
        distiller(tiny_swin(16), tiny_swin(16), saved_teacher,
                  stages=dict(student='backbone', teacher='backbone',
                              index=(3, 4), loss=dict(type='MSELoss')))
