"""DiffKD: real distillation steps on a detector, classifier and segmentor."""
import torch
from utils import (cls_batch, det_batch, n_params, seg_batch, tiny_deeplabv3,
                   tiny_resnet_cls, tiny_retinanet)

from mmkdflow.models import Distiller


def train_step(model, batch, keys):
    model.train()
    losses = model(*batch, mode='loss')
    assert set(keys) <= set(losses)
    total, log_vars = model.parse_losses(losses)
    assert set(keys) <= set(log_vars) and torch.isfinite(total)
    total.backward()
    conn = model.connectors['p']
    for part in ('proj', 'predictor'):
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in conn.branches[0][part].parameters())
    assert all(p.grad is None for p in model.teacher.parameters())
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                    lr=0.01).step()
    return losses


def test_retinanet_fpn_step_and_plain_student_export():
    from mmengine.registry import MODELS
    student, teacher = tiny_retinanet(8, 16), tiny_retinanet(16, 32)
    model = Distiller(
        student=student, teacher=teacher, allow_random_teacher=True,
        distill_points=dict(p=dict(
            student='neck', teacher='neck', index=(0, 1, 2, 3, 4),
            connector=dict(type='DiffKDConnector', student_channels=16,
                           teacher_channels=32,
                           kd_loss=dict(type='MSELoss', loss_weight=5.0)))))
    train_step(model, det_batch(), ['distill.p.loss_diff', 'distill.p.loss_kd',
                                    'student.loss_cls'])
    alone = MODELS.build(tiny_retinanet(8, 16))
    assert n_params(model.student) == n_params(alone)
    assert set(model.student.state_dict()) == set(alone.state_dict())
    model.eval()
    with torch.no_grad():
        preds = model(*det_batch(), mode='predict')
    assert len(preds) == 2


def test_classifier_logits_step_vector_form():
    model = Distiller(
        student=tiny_resnet_cls(8), teacher=tiny_resnet_cls(16),
        allow_random_teacher=True, distill_points=dict(p=dict(
            student='head.fc', teacher='head.fc', connector=dict(
                type='DiffKDConnector', student_channels=10,
                teacher_channels=10, form='vector',
                kd_loss=dict(type='KDLoss', temperature=1.0)))))
    train_step(model, cls_batch(), ['distill.p.loss_diff', 'distill.p.loss_kd',
                                    'student.loss'])


def test_segmentation_logits_step_dist():
    model = Distiller(
        student=tiny_deeplabv3(8), teacher=tiny_deeplabv3(16),
        allow_random_teacher=True, distill_points=dict(p=dict(
            student='decode_head.conv_seg', teacher='decode_head.conv_seg',
            connector=dict(type='DiffKDConnector', student_channels=11,
                           teacher_channels=11, form='vector',
                           kd_loss=dict(type='DISTLoss')))))
    train_step(model, seg_batch(), ['distill.p.loss_diff',
                                    'distill.p.loss_kd'])
