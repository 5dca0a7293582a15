"""Settings that cannot be meant are refused when the distiller is built,
and unreachable or odd checkpoint paths are reported in mmkdflow's words
(which point, which module, which file, and the fix)."""
import math

import pytest
import torch
from utils import det_batch, tiny_resnet_cls, tiny_retinanet

from mmkdflow.models import Distiller
from mmkdflow.models.distillers.pretrained import _url_of, remote_pretrained
from mmkdflow.engine.checkpoint import CheckpointError
from mmkdflow.engine.checkpoint.loading import hub_cache_path

#: Nothing listens on port 9 of this machine: connection refused at once,
#: as on a machine without internet access.
UNREACHABLE = 'http://127.0.0.1:9/weights/resnet18_offline.pth'


def fpn_point(**overrides) -> dict:
    point = dict(
        student='neck', teacher='neck', index=(0, 1, 2, 3, 4),
        connector=dict(type='ConvAdapter', in_channels=16, out_channels=32),
        loss=dict(type='MSELoss', loss_weight=1.0))
    point.update(overrides)
    return point


def build(saved_teacher, student=None, **kwargs) -> Distiller:
    teacher = tiny_retinanet(16, 32)
    ckpt, _ = saved_teacher(teacher)
    cfg = dict(student=student or tiny_retinanet(8, 16), teacher=teacher,
               teacher_ckpt=ckpt, distill_points=dict(fpn=fpn_point()))
    cfg.update(kwargs)
    return Distiller(**cfg)


# ---------------------------------------------------------------- weights
@pytest.mark.parametrize('weight', [-1.0, -1e-6, math.inf, math.nan])
def test_bad_distill_loss_weight_is_refused_naming_the_point(
        saved_teacher, weight):
    point = fpn_point(loss=dict(type='MSELoss', loss_weight=weight))
    with pytest.raises(ValueError) as excinfo:
        build(saved_teacher, distill_points=dict(fpn=point))
    message = str(excinfo.value)
    assert message.startswith("distill point 'fpn', loss:"), message
    assert f'loss_weight must be a finite number >= 0, got {weight!r}' \
        in message
    assert '0 switches the loss off' in message


def test_negative_loss_weight_inside_a_connector_names_the_point(
        saved_teacher):
    point = fpn_point(
        connector=dict(type='DiffKDConnector', student_channels=16,
                       teacher_channels=32, latent_channels=32,
                       kd_loss=dict(type='MSELoss', loss_weight=-2.0)),
        loss=None)
    with pytest.raises(ValueError, match=r"^distill point 'fpn', connector:"
                       r'.*loss_weight'):
        build(saved_teacher, distill_points=dict(fpn=point))


@pytest.mark.parametrize('weight', [-1.0, math.nan, 'high'])
def test_bad_student_loss_weight_is_refused(saved_teacher, weight):
    with pytest.raises(ValueError,
                       match='student_loss_weight must be a .*number >= 0'):
        build(saved_teacher, student_loss_weight=weight)


def test_zero_weights_are_allowed_and_switch_terms_off(saved_teacher):
    point = fpn_point(loss=dict(type='MSELoss', loss_weight=0.0))
    model = build(saved_teacher, student_loss_weight=0.0,
                  distill_points=dict(fpn=point))
    model.train()
    inputs, samples = det_batch()
    losses = model(inputs, samples, mode='loss')
    assert float(losses['distill.fpn.loss']) == 0.0
    assert all(float(sum(v) if isinstance(v, list) else v) == 0.0
               for k, v in losses.items()
               if k.startswith('student.') and 'loss' in k)


# ---------------------------------------------------------------- indices
def test_fpn_index_out_of_range_is_refused_at_build_time(saved_teacher):
    point = fpn_point(index=(0, 1, 2, 3, 5))
    with pytest.raises(IndexError) as excinfo:
        build(saved_teacher, distill_points=dict(fpn=point))
    assert str(excinfo.value) == (
        "distill point 'fpn': index [0, 1, 2, 3, 5] selects entry 5 of "
        "student 'neck', which returns 5 tensors (FPN); use indices 0..4 "
        "(or -5..-1 from the end), or change the module's number of outputs")


def test_backbone_teacher_index_out_of_range_is_refused(saved_teacher):
    point = dict(student='backbone', teacher='backbone', student_index=-1,
                 teacher_index=4, loss=None,
                 connector=dict(type='ConvAdapter', in_channels=64,
                                out_channels=256))
    with pytest.raises(IndexError, match=r"^distill point 'bb': "
                       r"teacher_index \[4\] selects entry 4 of teacher "
                       r"'backbone', which returns 3 tensors \(ResNet\)"):
        build(saved_teacher, distill_points=dict(bb=point))


def test_negative_indices_inside_the_range_are_fine(saved_teacher):
    model = build(saved_teacher, distill_points=dict(
        fpn=fpn_point(index=(-5, -1))))
    assert model.points[0].student_index == (-5, -1)


def test_classifier_backbone_index_checked():
    with pytest.raises(IndexError, match=r"student_index \[1\] selects "
                       r"entry 1 of student 'backbone', which returns 1 "
                       r'tensors'):
        Distiller(
            student=tiny_resnet_cls(8), teacher=tiny_resnet_cls(8),
            allow_random_teacher=True,
            distill_points=dict(feat=dict(
                student='backbone', teacher='backbone', student_index=1,
                teacher_index=0, loss=dict(type='MSELoss'))))


# ------------------------------------------------------- teacher paths
def test_unreachable_teacher_url_names_the_setting_and_the_fix(
        saved_teacher, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'hub'))
    with pytest.raises(CheckpointError) as excinfo:
        build(saved_teacher, teacher_ckpt=UNREACHABLE)
    message = str(excinfo.value)
    assert message.startswith(f'teacher_ckpt {UNREACHABLE!r} could not be '
                              f'downloaded (URLError'), message
    assert hub_cache_path(UNREACHABLE) in message
    assert message.endswith('or set teacher_ckpt to a local file path')


def test_teacher_checkpoint_found_in_the_cache_is_not_downloaded(
        saved_teacher, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'hub'))
    ckpt, _ = saved_teacher(tiny_retinanet(16, 32))
    cached = hub_cache_path(UNREACHABLE)
    import os
    import shutil
    os.makedirs(os.path.dirname(cached))
    shutil.copy(ckpt, cached)
    model = build(saved_teacher, teacher_ckpt=UNREACHABLE)
    assert model.teacher_ckpt == UNREACHABLE


def test_teacher_checkpoint_directory_is_named_as_such(saved_teacher,
                                                       tmp_path):
    ckpt, _ = saved_teacher(tiny_retinanet(16, 32), name='teacher.pth')
    with pytest.raises(CheckpointError) as excinfo:
        build(saved_teacher, teacher_ckpt=str(tmp_path))
    assert str(excinfo.value) == (
        f'teacher_ckpt {str(tmp_path)!r} is a directory, not a checkpoint '
        f'file; it holds teacher.pth. Give the path of the .pth file itself')


# ------------------------------------------------ Pretrained init_cfg
def test_unreachable_pretrained_init_cfg_names_the_module(
        saved_teacher, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'hub'))
    student = tiny_retinanet(8, 16)
    student['backbone']['init_cfg'] = dict(type='Pretrained',
                                           checkpoint=UNREACHABLE)
    model = build(saved_teacher, student=student)  # building needs nothing
    assert remote_pretrained(model) == [('student.backbone', UNREACHABLE)]
    with pytest.raises(CheckpointError) as excinfo:
        model.init_weights()  # what the Runner calls before training
    message = str(excinfo.value)
    assert message.startswith(
        f'the init_cfg of student.backbone (Pretrained, checkpoint='
        f'{UNREACHABLE!r}) could not be downloaded'), message
    assert 'model.student.backbone.init_cfg.checkpoint' in message
    assert 'model.student.backbone.init_cfg=None' in message


def test_pretrained_names_resolve_to_the_urls_mmengine_downloads():
    assert _url_of('torchvision://resnet50').startswith(
        'https://download.pytorch.org/models/resnet50')
    assert _url_of('open-mmlab://resnext101_64x4d').startswith('https://')
    assert _url_of(UNREACHABLE) == UNREACHABLE
    assert _url_of('s3://bucket/model.pth') is None


def test_pretrained_checkpoint_in_the_cache_initialises_the_student(
        saved_teacher, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'hub'))
    from mmengine.registry import MODELS
    torch.manual_seed(5)
    source = MODELS.build(tiny_retinanet(8, 16))
    import os
    cached = hub_cache_path(UNREACHABLE)
    os.makedirs(os.path.dirname(cached))
    torch.save(source.backbone.state_dict(), cached)
    student = tiny_retinanet(8, 16)
    student['backbone']['init_cfg'] = dict(type='Pretrained',
                                           checkpoint=UNREACHABLE)
    model = build(saved_teacher, student=student)
    model.init_weights()
    torch.testing.assert_close(model.student.backbone.conv1.weight,
                               source.backbone.conv1.weight)


def test_missing_local_pretrained_checkpoint_names_the_module(
        saved_teacher, tmp_path):
    student = tiny_retinanet(8, 16)
    missing = str(tmp_path / 'backbone_pretrained.pth')
    student['backbone']['init_cfg'] = dict(type='Pretrained',
                                           checkpoint=missing)
    model = build(saved_teacher, student=student)
    with pytest.raises(CheckpointError) as excinfo:
        model.init_weights()
    assert str(excinfo.value).startswith(
        f'the init_cfg of student.backbone (Pretrained) names {missing!r}, '
        f'which does not exist: set that init_cfg')


def test_random_teacher_pretrained_url_is_checked_too(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'hub'))
    teacher = tiny_retinanet(16, 32)
    teacher['backbone']['init_cfg'] = dict(type='Pretrained',
                                           checkpoint=UNREACHABLE)
    model = Distiller(
        student=tiny_retinanet(8, 16), teacher=teacher,
        allow_random_teacher=True, distill_points=dict(fpn=fpn_point()))
    with pytest.raises(CheckpointError,
                       match=r'^the init_cfg of teacher\.backbone'):
        model.init_weights()
