"""Predict, freeing, nested forwards, hooks, teacher dropout, logits."""
import gc
import weakref

import pytest
import torch
from utils import (PoolLinearConnector, cls_batch, det_batch, det_distiller,
                   seg_batch, tiny_deeplabv3, tiny_resnet_cls)

from mmkdflow.models import Distiller
from mmkdflow.models.connectors import BaseConnector, ConnectorOutput
from mmkdflow.registry import MODELS


def test_predict_runs_the_student_alone(saved_teacher):
    model, _ = det_distiller(saved_teacher)
    calls = []
    model.teacher.backbone.register_forward_hook(
        lambda *args: calls.append(1))
    model.eval()
    inputs, samples = det_batch()
    with torch.no_grad():
        results = model(inputs, samples, mode='predict')
    assert len(results) == 2 and 'pred_instances' in results[0]
    assert calls == []
    model.predict_with = 'teacher'
    with torch.no_grad():
        model(inputs, samples, mode='predict')
    assert calls == [1]


def _cls_distiller(**point) -> Distiller:
    """A classification distiller: KD on the logits, plus ``point``."""
    points = dict(logits=dict(student='head.fc', teacher='head.fc',
                              loss=dict(type='KDLoss', temperature=4.0)))
    if point:
        points['probe'] = point
    torch.manual_seed(0)
    return Distiller(student=tiny_resnet_cls(8),
                            teacher=tiny_resnet_cls(16),
                            allow_random_teacher=True, distill_points=points)


@pytest.mark.parametrize('kind', ['det', 'replace'])
def test_distiller_is_freed_without_the_garbage_collector(
        saved_teacher, kind, registered_for_test):
    """No reference cycle: the distiller, its hooks and every tensor of a
    step go away by reference counting alone, after a training step."""
    registered_for_test(MODELS, PoolLinearConnector)
    if kind == 'det':
        model, _ = det_distiller(saved_teacher)
        inputs, samples = det_batch()
        teacher_module = model.teacher.neck
    else:  # a connector replacing a later module's output
        model = _cls_distiller(
            student='backbone', index=-1, replace='head.fc',
            connector=dict(type='PoolLinearConnector', channels=64,
                           num_classes=10))
        inputs, samples = cls_batch()
        teacher_module = model.teacher.head.fc
    seen = []
    teacher_module.register_forward_hook(
        lambda m, i, out: seen.append(weakref.ref(
            out[0] if isinstance(out, tuple) else out)))
    gc.collect()
    gc.disable()
    try:
        model.train()
        losses = model(inputs, samples, mode='loss')
        model.parse_losses(losses)[0].backward()
        del losses
        assert seen and seen[0]() is None  # the step kept no tensor
        ref = weakref.ref(model)
        # a recorder is freed only once its hooks are off the modules (its
        # finalizer removes them), so dead recorders mean no hook is left
        recorders = [weakref.ref(model.student_recorder),
                     weakref.ref(model.teacher_recorder)]
        del model
        assert ref() is None
        assert [r() for r in recorders] == [None, None]
    finally:
        gc.enable()


class ProbeConnector(BaseConnector):
    """Test connector: the identity, calling ``inside()`` when set."""

    def __init__(self, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.inside = None

    def forward(self, student, teacher, ctx, replaced=None):
        if self.inside is not None:
            self.inside()
        return ConnectorOutput(student=list(student))


def test_nested_forwards_and_two_distillers_keep_their_own_steps(
        registered_for_test):
    """A forward run inside another (of the same distiller, or of a second
    one) neither sees nor disturbs the outer step's recorded tensors."""
    registered_for_test(MODELS, ProbeConnector)
    probe = dict(student='backbone', index=-1, replace=True,
                 connector=dict(type='ProbeConnector'))
    model, other = _cls_distiller(**probe), _cls_distiller(**probe)
    model.train()
    other.train()
    inputs, samples = cls_batch()
    expected = model(inputs, samples, mode='loss')
    inner = []

    def inside():
        if inner:
            return  # the nested forwards call the probe again
        inner.append(other(inputs[:2], samples[:2], mode='loss'))
        inner.append(model(inputs[:2], mode='tensor'))
        inner.append(model(inputs[:2], samples[:2], mode='loss'))

    model.connectors['probe'].inside = inside
    got = model(inputs, samples, mode='loss')
    assert len(inner) == 3 and inner[1].shape == (2, 10)
    assert set(got) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value)
    assert set(inner[0]) == set(inner[2]) == set(expected)


def test_remove_hooks_explicitly(saved_teacher):
    model, _ = det_distiller(saved_teacher)
    recorder = model.student_recorder
    inputs = torch.rand(1, 3, 64, 64)
    with recorder.recording() as record:
        model.student.extract_feat(inputs)
    assert len(record.get('neck')) == 5  # hooked: the FPN levels recorded
    model.remove_hooks()
    with recorder.recording() as record:
        model.student.extract_feat(inputs)
    with pytest.raises(RuntimeError, match="'neck' did not run"):
        record.get('neck')


def test_segmentation_teacher_dropout_stays_off():
    student, teacher = tiny_deeplabv3(8), tiny_deeplabv3(16)
    model = Distiller(
        student=student, teacher=teacher, allow_random_teacher=True,
        distill_points=dict(logits=dict(
            student='decode_head.conv_seg', teacher='decode_head.conv_seg',
            loss=dict(type='ChannelWiseDivergence', tau=1.0))))
    assert model.teacher_forward == 'tensor'
    model.train()
    assert model.student.decode_head.dropout.training
    assert not model.teacher.decode_head.dropout.training
    inputs, samples = seg_batch()
    # a teacher in eval mode is deterministic despite its dropout layer
    with torch.no_grad():
        first = model.teacher(inputs, samples, mode='tensor')
        second = model.teacher(inputs, samples, mode='tensor')
    torch.testing.assert_close(first, second)
    losses = model(inputs, samples, mode='loss')
    assert 'distill.logits.loss' in losses
    assert torch.isfinite(losses['distill.logits.loss'])


def test_classification_logits_and_labels_reach_the_loss():
    student, teacher = tiny_resnet_cls(8), tiny_resnet_cls(16)
    model = Distiller(
        student=student, teacher=teacher, allow_random_teacher=True,
        distill_points=dict(logits=dict(
            student='head.fc', teacher='head.fc',
            loss=dict(type='DKDLoss', alpha=1.0, beta=8.0,
                      temperature=4.0))))
    model.train()
    inputs, samples = cls_batch()
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {'student.loss', 'distill.logits.loss'}
    with torch.no_grad():
        s_logits = model.student(inputs, mode='tensor')
        t_logits = model.teacher(inputs, mode='tensor')
    from mmkdflow.models.core import DistillContext
    expected = model.distill_losses['logits'](
        s_logits, t_logits, DistillContext(data_samples=samples))
    torch.testing.assert_close(losses['distill.logits.loss'].detach(),
                               expected, rtol=1e-4, atol=1e-6)
