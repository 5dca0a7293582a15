"""What an FM-KT student computes at inference, on real models."""
import torch
from utils import (cls_batch, det_batch, perturb_gains, tiny_resnet_cls,
                   tiny_retinanet)
from mmengine.registry import MODELS as ROOT_MODELS

from mmkdflow.models import Distiller
from mmkdflow.models.core import DistillContext
from mmkdflow.models.losses import KDLoss


def fmkt_distiller(saved_teacher, teacher_channels, **connector):
    student, teacher = tiny_retinanet(8, 16), tiny_retinanet(
        8, teacher_channels)
    ckpt, _ = saved_teacher(teacher)
    connector = dict(type='FMKTFeatureConnector', channels=16, num_steps=2,
                     level_weights=[10, 10, 10, 10, 0], **connector)
    point = dict(student='neck', teacher='neck', index=(0, 1, 2, 3, 4),
                 replace=True, connector=connector)
    torch.manual_seed(0)
    return Distiller(student=student, teacher=teacher,
                            teacher_ckpt=ckpt, distill_points=dict(fpn=point))


def head_inputs(model, inputs):
    """Per-level inputs of the student's RetinaHead (its first conv)."""
    seen = []
    handle = model.student.bbox_head.cls_convs[0].register_forward_pre_hook(
        lambda mod, args: seen.append(args[0]))
    with torch.no_grad():
        outputs = model(inputs, mode='tensor')
    handle.remove()
    assert len(seen) == 5
    return seen, outputs


def test_retinanet_training_step_and_eval(saved_teacher):
    model = fmkt_distiller(saved_teacher, 32, teacher_proj=32,
                           num_steps_test=3)
    model.train()
    inputs, samples = det_batch()
    losses = model(inputs, samples, mode='loss')
    flow_keys = {f'distill.fpn.loss_flow_l{k}' for k in range(4)}
    assert flow_keys <= set(losses)
    assert 'distill.fpn.loss_flow_l4' not in losses  # weight 0
    total, log_vars = model.parse_losses(losses)
    assert flow_keys <= set(log_vars)
    total.backward()
    conn = model.connectors['fpn']
    assert all(p.grad is not None for p in conn.flows.parameters())
    assert sorted(conn.flows.fields) == ['0', '1', '2', '3']  # none on P7
    assert conn.projs['0'][0].weight.grad.abs().sum() > 0
    assert model.student.backbone.conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())

    model.eval()
    seen, _ = head_inputs(model, inputs)
    with torch.no_grad():
        raw = model.student.neck(model.student.backbone(inputs))
    # a fresh flow is the identity: the head reads the raw levels
    for got, plain in zip(seen, raw):
        torch.testing.assert_close(got, plain, rtol=0, atol=1e-6)
    perturb_gains(conn)
    seen, _ = head_inputs(model, inputs)
    with torch.no_grad():
        expected = conn(list(raw), None, DistillContext(training=False))
    for k, (got, want, plain) in enumerate(zip(seen, expected.student, raw)):
        torch.testing.assert_close(got, want)
        # P7 (weight 0) has no flow: the head reads the raw level
        assert torch.equal(got, plain) == (k == 4)


def test_theta_variant_keeps_vanilla_student_at_eval(saved_teacher):
    model = fmkt_distiller(saved_teacher, 16, theta=True,
                           meta_encoder='conv_det')
    model.train()
    inputs, samples = det_batch()
    losses = model(inputs, samples, mode='loss')
    assert {f'distill.fpn.loss_{n}_l{k}' for n in ('flow', 'theta')
            for k in range(4)} <= set(losses)
    model.parse_losses(losses)[0].backward()
    # at the identity start the gain gets the gradient first
    assert model.connectors['fpn'].field(0).velocity_gain.grad \
        .abs().sum() > 0
    model.eval()
    seen, outputs = head_inputs(model, inputs)
    with torch.no_grad():
        raw = model.student.neck(model.student.backbone(inputs))
        plain = model.student(inputs, mode='tensor')
    for got, want in zip(seen, raw):
        assert torch.equal(got, want)
    for got, want in zip(outputs, plain):
        for g, w in zip(got, want):
            assert torch.equal(g, w)


def cls_flow_distiller(saved_teacher, **connector):
    student, teacher = tiny_resnet_cls(8), tiny_resnet_cls(16)
    ckpt, _ = saved_teacher(teacher)
    connector = dict(type='FMKTLogitConnector', channels=64,
                     meta_encoder='mlp', num_steps=3, num_classes=10,
                     distance=dict(type='KDLoss', temperature=4.),
                     **connector)
    point = dict(student='backbone', student_index=-1, teacher='head.fc',
                 replace='head.fc', connector=connector)
    torch.manual_seed(0)
    return Distiller(student=student, teacher=teacher,
                            teacher_ckpt=ckpt, distill_points=dict(flow=point))


def test_theta_logit_flow_trains_own_head_and_deploys_vanilla(saved_teacher):
    model = cls_flow_distiller(saved_teacher, theta=True, theta_weight=0.5)
    conn, fc0 = model.connectors['flow'], model.student.head.fc
    assert conn.theta  # declared identity at inference: see the export
    model.train()
    inputs, samples = cls_batch(4, 32)
    losses = model(inputs, samples, mode='loss')
    assert {'distill.flow.loss_flow', 'distill.flow.loss_ce',
            'distill.flow.loss_theta', 'student.loss'} <= set(losses)
    # loss_theta = w * theta_weight * D(fc0(Z), stopgrad(mean_i fc(Xhat_i)))
    with torch.no_grad():
        feat = model.student.backbone(inputs)[-1]
        own = fc0(feat.mean((2, 3)))
        mean = sum(conn.classify(p) for p in conn.flow(
            feat, num_steps=3).predictions) / 3
    torch.testing.assert_close(losses['distill.flow.loss_theta'],
                               0.5 * KDLoss(temperature=4.)(own, mean))
    flow_params = list(conn.parameters())
    grads = torch.autograd.grad(
        losses['distill.flow.loss_theta'],
        [fc0.weight, model.student.backbone.conv1.weight] + flow_params,
        retain_graph=True, allow_unused=True)
    assert grads[0].abs().sum() > 0 and grads[1].abs().sum() > 0
    assert all(g is None or not g.any() for g in grads[2:])
    # the flow itself learns from its own losses
    flow_grads = torch.autograd.grad(losses['distill.flow.loss_flow'],
                                     flow_params, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in flow_grads)

    # inference: fc0(Z) alone, the flow never runs
    model.eval()
    calls = []
    conn.field(0).meta_encoder.register_forward_hook(
        lambda *a: calls.append(1))
    vanilla_cfg = dict(tiny_resnet_cls(8))
    vanilla = ROOT_MODELS.build(vanilla_cfg)
    vanilla.load_state_dict(model.student.state_dict())
    vanilla.eval()
    with torch.no_grad():
        got = model(inputs, samples, mode='tensor')
        want = vanilla(inputs, mode='tensor')
        preds = model(inputs, samples, mode='predict')
        vanilla_preds = vanilla(inputs, cls_batch(4, 32)[1], mode='predict')
    assert not calls
    assert torch.equal(got, want)
    for a, b in zip(preds, vanilla_preds):
        assert torch.equal(a.pred_score, b.pred_score)


def test_plain_logit_flow_replaces_head_output(saved_teacher):
    model = cls_flow_distiller(saved_teacher)
    assert not model.connectors['flow'].theta
    perturb_gains(model.connectors['flow'])
    model.eval()
    inputs, _ = cls_batch(4, 32)
    with torch.no_grad():
        got = model(inputs, mode='tensor')
        feat = model.student.backbone(inputs)[-1]
        conn = model.connectors['flow']
        want = sum(conn.classify(p) for p in conn.flow(
            feat, num_steps=3).predictions) / 3
    torch.testing.assert_close(got, want)
