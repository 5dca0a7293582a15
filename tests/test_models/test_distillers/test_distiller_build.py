"""Building the distiller: teacher loading, checkpoint and name errors."""
import pytest
import torch
from utils import FPN, det_batch, det_distiller, tiny_retinanet

from mmkdflow.models import Distiller
from mmkdflow.engine.checkpoint import CheckpointError


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


def test_student_from_package_config_path():
    model = Distiller(student=dict(
        cfg_path='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
        backbone=dict(init_cfg=None), bbox_head=dict(num_classes=10)))
    assert type(model.student).__name__ == 'RetinaNet'
    assert model.student.bbox_head.num_classes == 10
    assert model.student.backbone.depth == 18
