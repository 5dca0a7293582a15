"""A teacher normalised otherwise than its student (caffe-style teacher,
pytorch-style student) gets the batch its own preprocessor would give."""
import pytest
import torch
from utils import tiny_retinanet

from mmkdflow.models import Distiller
from mmkdflow.models.distillers.teacher_inputs import (TeacherInputs,
                                                       normalisation)

CAFFE = dict(type='DetDataPreprocessor', mean=[103.53, 116.28, 123.675],
             std=[1.0, 1.0, 1.0], bgr_to_rgb=False, pad_size_divisor=32)


def raw_det_batch():
    """Two uint8 images of different sizes, as a dataloader yields them
    (the student's preprocessor pads them to one 96 x 96 batch)."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for h, w in ((70, 90), (96, 64)):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=gen,
                                    dtype=torch.uint8))
        sample = DetDataSample(metainfo=dict(img_shape=(h, w),
                                             ori_shape=(h, w),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[4.0, 6.0, 30.0, 34.0]]),
            labels=torch.tensor([3]))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_a_caffe_teacher_sees_its_own_normalisation(saved_teacher):
    student = tiny_retinanet(8, 16)
    teacher = dict(tiny_retinanet(16, 32), data_preprocessor=CAFFE)
    ckpt, _ = saved_teacher(teacher)
    model = Distiller(
        student=student, teacher=teacher, teacher_ckpt=ckpt,
        distill_points=dict(fpn=dict(
            student='neck', teacher='neck',
            connector=dict(type='ConvAdapter', in_channels=16,
                           out_channels=32),
            loss=dict(type='MSELoss'))))
    assert isinstance(model.teacher_inputs, TeacherInputs)
    assert not any(k.startswith('teacher_inputs')
                   for k in model.state_dict())
    seen = []
    model.teacher.backbone.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].clone()))
    model.train()
    data = model.data_preprocessor(raw_det_batch(), training=True)
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['distill.fpn.loss'])

    own = model.teacher.data_preprocessor(raw_det_batch(), training=True)
    assert own['inputs'].shape == data['inputs'].shape == (2, 3, 96, 96)
    torch.testing.assert_close(seen[0], own['inputs'], rtol=0, atol=1e-4)
    # the student's batch is another one, and stays as it was
    assert (data['inputs'] - own['inputs']).abs().max() > 100
    # padding too: the teacher's pad value, not the student's re-scaled
    assert torch.all(seen[0][0, :, 70:, :] == 0)
    assert torch.all(seen[0][1, :, :, 64:] == 0)


def test_alike_preprocessors_need_no_transform():
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    pytorch = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12,
                                                         57.375],
                   bgr_to_rgb=True)
    first, second = DetDataPreprocessor(**pytorch), \
        DetDataPreprocessor(**pytorch)
    assert TeacherInputs.between(first, second) is None
    mean, std, flips, pad = normalisation(first)
    assert flips and pad == 0 and mean.tolist() == pytest.approx(
        pytorch['mean'])
    # only the channel order differs: a pure reversal
    other = DetDataPreprocessor(mean=[103.53, 116.28, 123.675],
                                std=[57.375, 57.12, 58.395])
    move = TeacherInputs.between(first, other)
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(move(x), x.flip(1))
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\).*same '
                       'data_preprocessor'):
        move(torch.randn(2, 4, 4))
