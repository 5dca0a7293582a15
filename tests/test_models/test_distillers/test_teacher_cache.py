"""The teacher-output cache: the losses of the teacher's own forward, the
teacher skipped for cached images whatever the batch composition, and
loud refusals of what would make cached tensors stale."""
import os.path as osp
import warnings

import pytest
import torch
from utils import config_path, det_batch, tiny_retinanet
from mmengine.config import Config

from mmkdflow.models.distillers import Distiller
from mmkdflow.models.distillers.teacher_cache import (TeacherOutputCache,
                                                      check_teacher_cache,
                                                      random_transforms)


def distiller(cache) -> Distiller:
    torch.manual_seed(0)
    return Distiller(
        student=tiny_retinanet(8, 16), teacher=tiny_retinanet(16, 16),
        allow_random_teacher=True, teacher_cache=cache,
        distill_points=dict(fpn=dict(student='neck', teacher='neck',
                                     loss=dict(type='PKDLoss'))))


def batch(names, seed=0):
    """A detection batch whose samples name their images."""
    inputs, samples = det_batch(len(names), 64, seed)
    for sample, name in zip(samples, names):
        sample.set_metainfo(dict(img_path=name))
    return inputs, samples


def count_teacher_forwards(model) -> list:
    calls = []
    model.teacher.backbone.register_forward_hook(
        lambda *_: calls.append(1))
    return calls


def test_cached_step_gives_the_losses_of_the_teacher_forward():
    cached, plain = distiller(True), distiller(False)
    plain.load_state_dict(cached.state_dict())
    calls = count_teacher_forwards(cached)
    inputs, samples = batch(['a.png', 'b.png'])
    cached.train()
    plain.train()
    cached(inputs, samples, mode='loss')  # first epoch: fills the cache
    assert len(calls) == 1 and len(cached.teacher_cache) == 2
    again = cached(inputs, samples, mode='loss')
    assert len(calls) == 1  # the teacher did not run again
    assert cached.teacher_cache.hits == 1
    reference = plain(inputs, samples, mode='loss')
    assert set(again) == set(reference)
    for key in reference:
        torch.testing.assert_close(again[key], reference[key])


def test_any_batch_composition_of_cached_images_is_served():
    cached, plain = distiller(True), distiller(False)
    plain.load_state_dict(cached.state_dict())
    calls = count_teacher_forwards(cached)
    inputs, samples = batch(['a', 'b', 'c', 'd'])
    cached.train()
    plain.train()
    cached(inputs[:2], samples[:2], mode='loss')
    cached(inputs[2:], samples[2:], mode='loss')
    assert len(calls) == 2
    order = [3, 0, 2]
    picked = [samples[i] for i in order]
    served = cached(inputs[order], picked, mode='loss')
    assert len(calls) == 2
    fresh = plain(inputs[order], picked, mode='loss')
    torch.testing.assert_close(served['distill.fpn.loss'],
                               fresh['distill.fpn.loss'],
                               rtol=1e-5, atol=1e-6)


def test_an_image_that_comes_back_changed_is_refused():
    """What a random flip would do between two epochs."""
    model = distiller(True)
    inputs, samples = batch(['a.png', 'b.png'])
    model.train()
    model(inputs, samples, mode='loss')
    flipped = inputs.clone()
    flipped[1] = flipped[1].flip(-1)
    with pytest.raises(RuntimeError, match="image 'b.png' reached the model "
                       'with another input.*Remove teacher_cache'):
        model(flipped, samples, mode='loss')


def test_samples_that_do_not_name_their_image_are_refused():
    model = distiller(dict(key='img_id'))
    inputs, samples = batch(['a', 'b'])
    with pytest.raises(ValueError, match=r"metainfo\['img_id'\]"):
        model(inputs, samples, mode='loss')


def test_a_full_cache_warns_and_keeps_running_the_teacher():
    model = distiller(dict(max_gb=1e-9))
    calls = count_teacher_forwards(model)
    inputs, samples = batch(['a', 'b'])
    model.train()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        first = model(inputs, samples, mode='loss')
    assert any('teacher_cache is full' in str(w.message) for w in caught)
    assert len(model.teacher_cache) == 0
    second = model(inputs, samples, mode='loss')
    assert len(calls) == 2
    torch.testing.assert_close(first['distill.fpn.loss'],
                               second['distill.fpn.loss'])


def test_settings_that_cannot_work_are_refused_at_build():
    with pytest.raises(ValueError, match='has no teacher'):
        Distiller(student=tiny_retinanet(8, 16), teacher_cache=True)
    with pytest.raises(TypeError, match='teacher_cache must be'):
        distiller('yes')
    with pytest.raises(ValueError, match='max_gb must be > 0'):
        TeacherOutputCache(max_gb=0)


def test_random_transforms_are_found_through_wrappers():
    assert random_transforms([
        dict(type='LoadImageFromFile'), dict(type='Resize', scale=(8, 8)),
        dict(type='mmdet.RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='RandomApply', transforms=[dict(type='ColorJitter')]),
        dict(type='TransformBroadcaster',
             transforms=[[dict(type='RandomCrop')]]),
    ]) == ['RandomFlip', 'PhotoMetricDistortion', 'RandomApply',
           'ColorJitter', 'RandomCrop']


def test_train_tool_check_refuses_random_pipelines_only():
    demo = 'pkd_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det.py'
    cfg = Config.fromfile(config_path('demo', demo))
    check_teacher_cache(cfg)  # cache off: nothing to check
    cfg.model.teacher_cache = True
    check_teacher_cache(cfg)  # the digits pipelines are deterministic
    cfg.train_dataloader.dataset = dict(
        type='RepeatDataset', times=2, dataset=dict(
            cfg.train_dataloader.dataset,
            pipeline=[*cfg.train_dataloader.dataset.pipeline,
                      dict(type='RandomFlip', prob=0.5)]))
    with pytest.raises(ValueError, match=r'randomly \(RandomFlip\).*Remove '
                       'teacher_cache'):
        check_teacher_cache(cfg)
    assert osp.isfile(cfg.filename)
