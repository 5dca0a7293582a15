"""Connectors and losses of distillation points in a step; ``replace``."""
import pytest
import torch
from utils import (PoolLinearConnector, cls_batch, det_batch, det_distiller,
                   tiny_resnet_cls, tiny_retinanet)

from mmkdflow.models import Distiller
from mmkdflow.models.connectors import BaseConnector, ConnectorOutput
from mmkdflow.registry import MODELS


def test_loss_step_logs_terms_and_keeps_teacher(saved_teacher):
    model, state = det_distiller(saved_teacher)
    model.train()
    inputs, samples = det_batch()
    losses = model(inputs, samples, mode='loss')
    assert {'student.loss_cls', 'student.loss_bbox',
            'distill.fpn.loss'} <= set(losses)
    total, log_vars = model.parse_losses(losses)
    assert 'distill.fpn.loss' in log_vars
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.connectors['fpn'].adapter[0].weight.grad.abs().sum() > 0
    assert model.student.backbone.conv1.weight.grad.abs().sum() > 0
    opt = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.1)
    opt.step()
    for key, value in model.teacher.state_dict().items():
        torch.testing.assert_close(value, state[key])


def test_distill_loss_matches_direct_computation(saved_teacher):
    model, _ = det_distiller(saved_teacher)
    model.train()
    torch.manual_seed(0)
    inputs, samples = det_batch()
    losses = model(inputs, samples, mode='loss')
    with torch.no_grad():
        t_feats = model.teacher.extract_feat(inputs)
        s_feats = model.student.extract_feat(inputs)
    adapter = model.connectors['fpn'].adapter
    expected = sum(
        2.0 * torch.mean((adapter(s) - t) ** 2)
        for s, t in zip(s_feats, t_feats))
    torch.testing.assert_close(losses['distill.fpn.loss'].detach(),
                               expected, rtol=1e-4, atol=1e-6)


class ScaleConnector(BaseConnector):
    """Test connector: multiplies the student by a constant."""

    def __init__(self, scale: float = 0.0, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.scale = scale
        self.calls = []

    def forward(self, student, teacher, ctx):
        self.calls.append(dict(teacher=teacher is not None,
                               training=ctx.training))
        return ConnectorOutput(student=[s * self.scale for s in student],
                               losses=dict(loss_probe=sum(
                                   s.sum() * 0 for s in student)))


def test_replacing_connector_feeds_the_student_head(registered_for_test):
    registered_for_test(MODELS, ScaleConnector)
    student = tiny_retinanet(8, 16)
    plain = Distiller(student=student)
    replaced = Distiller(
        student=student, distill_points=dict(zero=dict(
            student='neck', index=(0, 1, 2, 3, 4), replace=True,
            connector=dict(type='ScaleConnector', scale=0.0))))
    replaced.student.load_state_dict(plain.student.state_dict())
    plain.eval()
    replaced.eval()
    inputs, _ = det_batch()
    with torch.no_grad():
        out_plain = plain(inputs, mode='tensor')
        out_zero = replaced(inputs, mode='tensor')
        # with zero features every location gives the head's bias only
        head = replaced.student.bbox_head
        bias_only = head.forward(tuple(
            torch.zeros_like(x)
            for x in replaced.student.extract_feat(inputs)))
    cls_zero = out_zero[0][0]
    torch.testing.assert_close(cls_zero, bias_only[0][0])
    assert not torch.allclose(out_plain[0][0], cls_zero)
    calls = replaced.connectors['zero'].calls
    assert calls[-1] == dict(teacher=False, training=False)
    # outside the distiller the student is a plain model again
    with torch.no_grad():
        direct = replaced.student(inputs, mode='tensor')
    torch.testing.assert_close(direct[0][0], out_plain[0][0])


def test_connector_can_replace_a_later_module_output(registered_for_test):
    registered_for_test(MODELS, PoolLinearConnector)
    student = tiny_resnet_cls(8)
    model = Distiller(
        student=student, distill_points=dict(flow=dict(
            student='backbone', index=-1, replace='head.fc',
            connector=dict(type='PoolLinearConnector', channels=64,
                           num_classes=10))))
    model.eval()
    inputs, samples = cls_batch()
    with torch.no_grad():
        logits = model(inputs, mode='tensor')
        feat = model.student.backbone(inputs)[-1]
        expected = model.connectors['flow'].fc(feat.mean(dim=(2, 3)))
    torch.testing.assert_close(logits, expected)
    model.train()
    losses = model(inputs, samples, mode='loss')
    losses['student.loss'].backward()
    # the student's CE now trains the connector's classifier, not head.fc
    assert model.connectors['flow'].fc.weight.grad.abs().sum() > 0
    assert model.student.head.fc.weight.grad is None


def test_bad_replace_value_is_an_error():
    with pytest.raises(ValueError, match='replace must be True/False'):
        Distiller(student=tiny_resnet_cls(8), distill_points=dict(
            flow=dict(student='backbone', replace=3,
                      connector=dict(type='IdentityConnector'))))


def test_a_resizing_loss_pairs_levels_of_other_strides(saved_teacher):
    """Student FPN levels P3-P5 against the teacher's P4-P6 (half the size
    each): ``PKDLoss(resize_stu=True)`` resizes the student through
    ``distill_points``; a loss that does not resize keeps the error."""
    import torch.nn.functional as F

    from mmkdflow.models.losses.pkd_loss import normalize_channels
    point = dict(
        student='neck', teacher='neck', student_index=(0, 1, 2),
        teacher_index=(1, 2, 3),
        connector=dict(type='ConvAdapter', in_channels=16, out_channels=32),
        loss=dict(type='PKDLoss', resize_stu=True))
    model, _ = det_distiller(saved_teacher, distill_points=dict(fpn=point))
    model.train()
    inputs, samples = det_batch(size=64)
    torch.manual_seed(0)
    losses = model(inputs, samples, mode='loss')
    with torch.no_grad():
        t_feats = model.teacher.extract_feat(inputs)[1:4]
        s_feats = model.student.extract_feat(inputs)[0:3]
    adapter = model.connectors['fpn'].adapter
    expected = 0.
    for s, t in zip(s_feats, t_feats):
        assert s.shape[2:] != t.shape[2:]
        s = F.interpolate(adapter(s), size=t.shape[2:], mode='bilinear',
                          align_corners=False)
        expected += torch.mean(
            (normalize_channels(s) - normalize_channels(t)) ** 2) / 2
    torch.testing.assert_close(losses['distill.fpn.loss'].detach(),
                               expected, rtol=1e-4, atol=1e-6)
    losses['distill.fpn.loss'].backward()
    assert adapter[0].weight.grad.abs().sum() > 0

    point['loss'] = dict(type='PKDLoss')
    model, _ = det_distiller(saved_teacher, distill_points=dict(fpn=point))
    model.train()
    with pytest.raises(ValueError, match=r'\(2, 32, 8, 8\).*resize_stu'):
        model(inputs, samples, mode='loss')
