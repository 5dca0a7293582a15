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
from test_config_names import ALIASES

# the former name kept as an alias is checked by tests/test_config_names.py
FMKT_CONFIGS = sorted(p for p in glob.glob(config_path('fmkt', '*.py'))
                      if osp.relpath(p, config_path()) not in ALIASES)
DEMO_CONFIGS = [config_path('demo', name) for name in (
    'fmkt_retinanet-r18_retinanet-r18c16_fpn_1xb4-4e_digits-det.py',
    'fmkt-theta_retinanet-r18_retinanet-r18c16_fpn_1xb4-4e_digits-det.py',
    'fmkt_resnet18_resnet18c8_1xb32-10e_digits-cls.py',
    'ofmkt_resnet18c8_1xb32-10e_digits-cls.py')]
OPENMMLAB_URL = 'https://download.openmmlab.com/'


def _params():
    out = [pytest.param(p, id=osp.basename(p), marks=pytest.mark.slow)
           for p in FMKT_CONFIGS]
    return out + [pytest.param(p, id=osp.basename(p)) for p in DEMO_CONFIGS]


def test_every_recipe_is_listed():
    names = {osp.basename(p) for p in FMKT_CONFIGS}
    assert {
        'fmkt_retinanet-x101_retinanet-r50_fpn_2x_coco.py',
        'fmkt_retinanet-r101_retinanet-r50_fpn_2x_coco.py',
        'fmkt_faster-rcnn-r101_faster-rcnn-r50_fpn_2x_coco.py',
        'fmkt_fcos-x101_retinanet-r50_fpn_1x_coco.py',
        'fmkt_fcos-r101_fcos-r50_fpn_gn-head_ms-640-800-2x_coco.py',
        'fmkt_reppoints-x101_reppoints-r50_fpn-gn_head-gn_2x_coco.py',
        'fmkt_resnet34_resnet18_8xb32_in1k.py',
        'fmkt-theta_resnet34_resnet18_8xb32_in1k.py',
        'fmkt_resnet50_mobilenet-v1_8xb32_in1k.py',
        'fmkt-theta_resnet50_mobilenet-v1_8xb32_in1k.py',
        'ofmkt_resnet18_8xb32_in1k.py',
        'fmkt_deeplabv3-r101_deeplabv3-r18_4xb2-80k_cityscapes-512x1024.py',
    } <= names
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
