"""The distiller core on real mmdet, mmseg and mmpretrain models."""
import gc
import weakref

import pytest
import torch
from conftest import (cls_batch, det_batch, seg_batch, tiny_deeplabv3,
                      tiny_resnet_cls, tiny_retinanet)

from mmkdflow.models import Distiller
from mmkdflow.models.connectors import BaseConnector, ConnectorOutput
from mmkdflow.registry import MODELS
from mmkdflow.utils import CheckpointError

FPN = dict(
    student='neck', teacher='neck', index=(0, 1, 2, 3, 4),
    connector=dict(type='ConvAdapter', in_channels=16, out_channels=32),
    loss=dict(type='MSELoss', loss_weight=2.0))


def det_distiller(saved_teacher, **kwargs):
    student, teacher = tiny_retinanet(8, 16), tiny_retinanet(16, 32)
    ckpt, state = saved_teacher(teacher)
    cfg = dict(student=student, teacher=teacher, teacher_ckpt=ckpt,
               distill_points=dict(fpn=FPN))
    cfg.update(kwargs)
    return Distiller(**cfg), state


def test_builds_by_name_in_mmkdflow_scope(saved_teacher):
    student, teacher = tiny_retinanet(8, 16), tiny_retinanet(16, 32)
    ckpt, _ = saved_teacher(teacher)
    from mmengine.registry import MODELS as ROOT
    model = ROOT.build(dict(
        _scope_='mmkdflow', type='Distiller', student=student,
        teacher=teacher, teacher_ckpt=ckpt, distill_points=dict(fpn=FPN)))
    assert type(model).__name__ == 'Distiller'
    assert type(model.student).__name__ == 'RetinaNet'
    assert model.data_preprocessor is model.student.data_preprocessor
    assert model.teacher_forward == 'extract_feat'


def test_teacher_weights_loaded_and_frozen(saved_teacher):
    model, state = det_distiller(saved_teacher)
    for key, value in model.teacher.state_dict().items():
        torch.testing.assert_close(value, state[key])
    assert not any(p.requires_grad for p in model.teacher.parameters())
    model.train()
    assert model.student.training
    assert not any(m.training for m in model.teacher.modules())
    model.init_weights()  # must not re-initialise the loaded teacher
    for key, value in model.teacher.state_dict().items():
        torch.testing.assert_close(value, state[key])


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


def test_missing_teacher_checkpoint_is_an_error(tmp_path):
    student, teacher = tiny_retinanet(8, 16), tiny_retinanet(16, 32)
    with pytest.raises(ValueError, match='no teacher_ckpt given'):
        Distiller(student=student, teacher=teacher,
                         distill_points=dict(fpn=FPN))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        Distiller(student=student, teacher=teacher,
                         teacher_ckpt=str(tmp_path / 'nope.pth'),
                         distill_points=dict(fpn=FPN))
    model = Distiller(student=student, teacher=teacher,
                             allow_random_teacher=True,
                             distill_points=dict(fpn=FPN))
    assert model.teacher is not None


def test_wrong_architecture_checkpoint_lists_mismatches(saved_teacher):
    student, teacher = tiny_retinanet(8, 16), tiny_retinanet(16, 32)
    wrong, _ = saved_teacher(tiny_retinanet(16, 24), 'wrong.pth')
    with pytest.raises(CheckpointError,
                       match=r'shape mismatches: neck\.lateral_convs'):
        Distiller(student=student, teacher=teacher, teacher_ckpt=wrong,
                         distill_points=dict(fpn=FPN))


def test_unknown_module_path_names_close_matches():
    student, teacher = tiny_retinanet(8, 16), tiny_retinanet(8, 16)
    with pytest.raises(ValueError, match=r"has no module 'nekc'.*neck"):
        Distiller(student=student, teacher=teacher,
                         allow_random_teacher=True,
                         distill_points=dict(fpn=dict(
                             student='nekc', teacher='neck',
                             loss=dict(type='MSELoss'))))


def test_channel_mismatch_is_caught_at_build_time():
    student, teacher = tiny_retinanet(8, 16), tiny_retinanet(16, 32)
    with pytest.raises(ValueError, match=r'16 channels.*gives 32.*'
                       r"ConvAdapter', in_channels=16, out_channels=32"):
        Distiller(student=student, teacher=teacher,
                         allow_random_teacher=True,
                         distill_points=dict(fpn=dict(
                             student='neck', teacher='neck', index=0,
                             loss=dict(type='MSELoss'))))


def test_shape_mismatch_at_first_forward_names_both_shapes():
    # backbone stages declare no out_channels: the check happens at forward
    student, teacher = tiny_retinanet(8, 16), tiny_retinanet(16, 16)
    model = Distiller(
        student=student, teacher=teacher, allow_random_teacher=True,
        distill_points=dict(c3=dict(student='backbone.layer2',
                                    teacher='backbone.layer2',
                                    loss=dict(type='MSELoss'))))
    inputs, samples = det_batch()
    with pytest.raises(ValueError, match=r'\(2, 16, 8, 8\).*\(2, 32, 8, 8\)'):
        model(inputs, samples, mode='loss')


def test_unregistered_loss_names_close_matches():
    student = tiny_retinanet(8, 16)
    with pytest.raises(KeyError, match="'PKDLos' is not registered.*PKDLoss"):
        Distiller(student=student, teacher=student,
                         allow_random_teacher=True,
                         distill_points=dict(fpn=dict(
                             student='neck', teacher='neck',
                             loss=dict(type='PKDLos'))))


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


def test_student_from_package_config_path():
    model = Distiller(student=dict(
        cfg_path='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
        backbone=dict(init_cfg=None), bbox_head=dict(num_classes=10)))
    assert type(model.student).__name__ == 'RetinaNet'
    assert model.student.bbox_head.num_classes == 10
    assert model.student.backbone.depth == 18


class PoolLinearConnector(BaseConnector):
    """Test connector: pooled linear classifier on a backbone feature."""

    def __init__(self, channels: int, num_classes: int, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.fc = torch.nn.Linear(channels, num_classes)

    def forward(self, student, teacher, ctx, replaced=None):
        return ConnectorOutput(
            student=[self.fc(s.mean(dim=(2, 3))) for s in student])


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
