"""FM-KT logit flow: its losses, online and theta, per pixel on DeepLabV3."""
import pytest
import torch
import torch.nn as nn
from utils import perturb_gains

from mmkdflow.models import Distiller
from mmkdflow.models.core import DistillContext
from mmkdflow.models.fmkt import FlowLogitHead, FMKTLogitConnector
from mmkdflow.models.losses import KDLoss
from mmkdflow.models.utils import build_mmkdflow_module


def test_logit_flow_math_and_online():
    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    conn = build_mmkdflow_module(dict(
        type='FMKTLogitConnector', channels=8, meta_encoder='mlp',
        num_steps=3, num_classes=5, flow_weight=2.,
        distance=dict(type='KDLoss', temperature=4.)))
    perturb_gains(conn)
    z, y_t = torch.randn(4, 8, 3, 3), torch.randn(4, 5)
    ctx = DistillContext([DataSample().set_gt_label(i) for i in range(4)])
    out = conn([z], [y_t], ctx)
    logits = [conn.classify(p) for p in conn.flow(z, num_steps=3).predictions]
    torch.testing.assert_close(out.student[0], sum(logits) / 3)
    kd, labels = KDLoss(temperature=4.), torch.arange(4)
    torch.testing.assert_close(out.losses['loss_flow'],
                               2 / 3 * sum(kd(o, y_t) for o in logits))
    torch.testing.assert_close(out.losses['loss_ce'], 2 / 3 * sum(
        nn.functional.cross_entropy(o, labels) for o in logits))
    online = FMKTLogitConnector(8, meta_encoder='mlp', num_steps=2,
                                num_classes=5, online=True,
                                distance=dict(type='KDLoss'))
    assert set(online([z], None, ctx).losses) == {'loss_flow', 'loss_ce'}
    assert not online([z], None, DistillContext(training=False)).losses


def test_theta_logit_flow_needs_the_replaced_output():
    conn = FMKTLogitConnector(8, meta_encoder='mlp', num_steps=2,
                              num_classes=5, theta=True)
    z = torch.randn(2, 8, 3, 3)
    with pytest.raises(ValueError, match="replace='head.fc'"):
        conn([z], [torch.randn(2, 5)], DistillContext())
    with pytest.raises(ValueError, match="replace='head.fc'"):
        conn([z], None, DistillContext(training=False))
    own = torch.randn(2, 5)
    out = conn([z], None, DistillContext(training=False), replaced=own)
    assert out.student[0] is own
    with pytest.raises(ValueError, match='num_classes'):
        conn([z], [torch.randn(2, 5)], DistillContext(),
             replaced=torch.randn(2, 7))


def test_per_pixel_logit_flow_on_deeplabv3(saved_teacher):
    """Segmentation logit flow [ext]: per-pixel head, per-pixel CE with
    ignored pixels, mean logits replace decode_head.conv_seg."""
    from utils import seg_batch, tiny_deeplabv3
    student, teacher = tiny_deeplabv3(8), tiny_deeplabv3(16)
    ckpt, _ = saved_teacher(teacher)
    connector = dict(type='FMKTLogitConnector', channels=16,
                     meta_encoder='conv', num_steps=2, head_pool=False,
                     num_classes=11, distance=dict(type='DISTLoss'))
    point = dict(student='decode_head.bottleneck',
                 teacher='decode_head.conv_seg',
                 replace='decode_head.conv_seg', connector=connector)
    torch.manual_seed(0)
    model = Distiller(student=student, teacher=teacher,
                             teacher_ckpt=ckpt,
                             distill_points=dict(flow=point))
    model.train()
    inputs, samples = seg_batch(2, 64)
    for sample in samples:
        sample.gt_sem_seg.data[:, :8] = 255
    losses = model(inputs, samples, mode='loss')
    conn = model.connectors['flow']
    assert torch.isfinite(losses['distill.flow.loss_ce'])
    model.parse_losses(losses)[0].backward()
    assert conn.logit_head.fc.weight.grad.abs().sum() > 0
    assert model.student.backbone.stem[0].weight.grad.abs().sum() > 0

    # the per-pixel CE leaves out label 255 and resizes to the label map
    logits = torch.randn(2, 11, 8, 8)
    ctx = DistillContext(samples)
    labels = ctx.gt_sem_seg()
    up = nn.functional.interpolate(logits, size=(64, 64), mode='bilinear',
                                   align_corners=False)
    torch.testing.assert_close(
        conn.logit_head.label_loss(logits, ctx),
        nn.functional.cross_entropy(up, labels, ignore_index=255))

    # class_weight: sum_p w[y_p] CE_p / sum_p w[y_p] over labelled pixels
    weights = [0.1] + [1.0] * 10
    head = FlowLogitHead(16, 11, pool=False, class_weight=weights)
    per_pixel = -up.log_softmax(1).gather(
        1, labels.clamp(max=10).unsqueeze(1)).squeeze(1)
    w = torch.tensor(weights)[labels.clamp(max=10)] * (labels != 255)
    torch.testing.assert_close(head.label_loss(logits, ctx),
                               (w * per_pixel).sum() / w.sum())
    with pytest.raises(ValueError, match='class_weight needs 11'):
        FlowLogitHead(16, 11, pool=False, class_weight=[1.0] * 10)
    with pytest.raises(ValueError, match='non-negative'):
        FlowLogitHead(16, 11, pool=False, class_weight=[-1.0] * 11)

    model.eval()
    with torch.no_grad():
        got = model(inputs, mode='tensor')  # the decode head's logits
        feat = model.student.decode_head._forward_feature(
            model.student.extract_feat(inputs))
        want = conn([feat], None, DistillContext(training=False)).student[0]
    assert got.shape == (2, 11, 8, 8)
    torch.testing.assert_close(got, want)


def test_flow_ce_takes_the_mixed_scores_of_mixup():
    """Under Mixup / CutMix the samples carry ``gt_score`` (the mixed
    labels): the flow's CE uses them, with label smoothing on top, as
    mmpretrain's own loss does; hard labels otherwise."""
    from mmpretrain.structures import DataSample
    head = FlowLogitHead(8, 5)
    logits = torch.randn(3, 5)
    scores = torch.softmax(torch.randn(3, 5), dim=1)
    samples = [DataSample().set_gt_label(i).set_gt_score(s)
               for i, s in enumerate(scores)]
    smooth = 0.1
    target = scores * (1 - smooth) + smooth / 5
    expected = -(target * torch.log_softmax(logits, 1)).sum(1).mean()
    torch.testing.assert_close(
        head.label_loss(logits, DistillContext(samples), smooth), expected)
    hard = [DataSample().set_gt_label(i) for i in range(3)]
    torch.testing.assert_close(
        head.label_loss(logits, DistillContext(hard)),
        nn.functional.cross_entropy(logits, torch.arange(3)))
