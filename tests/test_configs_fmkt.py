"""Every FM-KT config builds and runs one training step.

For each config under ``configs/fmkt/`` (COCO, ImageNet and Cityscapes
models, marked slow) and the FM-KT demo configs: the teacher (if any) is
built from its own config, saved to a local checkpoint that replaces the
config's URL (nothing is downloaded), the distiller is built through the
registry, and one forward/backward step on a tiny batch must give finite
losses, a gradient into the student and the connector, and none into the
teacher.
"""
import copy
import glob
import os.path as osp

import pytest
import torch
from conftest import (assert_some_gradient, cls_batch, config_path, det_batch,
                      seg_batch)
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm

from mmkdflow.models.utils.model_builder import (build_task_model,
                                                 resolve_model_cfg)
from mmkdflow.registry import MODELS

FMKT_CONFIGS = sorted(glob.glob(config_path('fmkt', '*.py')))
DEMO_CONFIGS = [config_path('demo', name) for name in (
    'fmkt_retinanet_r18_r18c16_digits.py',
    'fmkt_theta_retinanet_r18_r18c16_digits.py',
    'fmkt_resnet18_r18c8_digits.py',
    'ofmkt_resnet18c8_digits.py')]
OPENMMLAB_URL = 'https://download.openmmlab.com/'


def _params():
    out = [pytest.param(p, id=osp.basename(p), marks=pytest.mark.slow)
           for p in FMKT_CONFIGS]
    return out + [pytest.param(p, id=osp.basename(p)) for p in DEMO_CONFIGS]


def test_every_recipe_is_listed():
    names = {osp.basename(p) for p in FMKT_CONFIGS}
    assert {'retinanet_x101_r50.py', 'retinanet_r101_r50.py',
            'faster_rcnn_r101_r50.py', 'fcos_x101_retinanet_r50.py',
            'fcos_r101_r50.py', 'reppoints_x101_r50.py',
            'resnet34_resnet18_in1k.py', 'resnet34_resnet18_in1k_theta.py',
            'resnet50_mobilenetv1_in1k.py',
            'resnet50_mobilenetv1_in1k_theta.py', 'ofmkt_resnet18_in1k.py',
            'deeplabv3_r101_r18_cityscapes.py'} <= names
    for path in DEMO_CONFIGS:
        assert osp.isfile(path), path


def _batch(scope: str, path: str, small: bool):
    if scope == 'mmdet':
        # RepPoints' deformable convolutions (mmcv's CPU kernel) need every
        # level, down to P7 (stride 128), to be at least 3 x 3
        if 'reppoints' in path:
            return det_batch(1, 384)
        return det_batch(2, 64)
    if scope == 'mmseg':
        inputs, samples = seg_batch(2, 64)
        for sample in samples:  # some pixels unlabelled, as in Cityscapes
            sample.gt_sem_seg.data[:, :4] = 255
        return inputs, samples
    return cls_batch(4, 32 if small else 64)


@pytest.mark.parametrize('path', _params())
def test_config_trains_one_step(path, tmp_path):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports.imports == ['mmkdflow']
    assert cfg.custom_imports.allow_failed_imports is False
    model_cfg = copy.deepcopy(cfg.model)
    dp = cfg.get('data_preprocessor')
    _, scope = resolve_model_cfg(model_cfg.student, 'student', dp)
    is_recipe = path in FMKT_CONFIGS
    if model_cfg.get('teacher') is not None:
        if is_recipe:
            assert model_cfg.teacher_ckpt.startswith(OPENMMLAB_URL)
        torch.manual_seed(1)
        teacher = build_task_model(model_cfg.teacher, 'teacher', dp)
        ckpt = str(tmp_path / 'teacher.pth')
        torch.save({'meta': {}, 'state_dict': teacher.state_dict()}, ckpt)
        del teacher
        model_cfg.teacher_ckpt = ckpt
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(model_cfg))  # as the Runner
    model.train()
    inputs, samples = _batch(scope, path, small=not is_recipe)
    losses = model(inputs, samples, mode='loss')
    total, log_vars = model.parse_losses(losses)
    assert any(k.startswith('distill.') for k in log_vars), sorted(log_vars)
    for key, value in log_vars.items():
        assert torch.isfinite(torch.as_tensor(value)), key
    total.backward()

    assert_some_gradient(model.student.backbone.parameters(),
                         'the student backbone')
    assert_some_gradient(model.connectors.parameters(), 'the connectors')
    if model.teacher is None:
        assert cfg.model.get('teacher') is None
    else:
        assert not model.teacher.training
        assert all(p.grad is None and not p.requires_grad
                   for p in model.teacher.parameters())
