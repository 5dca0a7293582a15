"""Every DiffKD config builds the way the Runner builds it and trains a step.

For each config under ``configs/diffkd/`` (parametrised over the directory,
so a new config is tested without touching this file) and for the DigitsDet
demo config: the teacher is built from its own config, its random weights
are saved as a real checkpoint that replaces the config's URL (nothing is
downloaded), the distiller is built through the registry, the teacher must
hold exactly the saved weights, and one training step on a tiny batch (made
by the student's data preprocessor) must give finite losses, DiffKD's
``loss_diff`` / ``loss_kd`` (``loss_ae`` with the autoencoder), gradients
into the student (from the distillation losses too) and the connectors, and
none into the teacher. The COCO / Cityscapes / ImageNet models are large,
so those builds are marked slow.
"""
import copy
import glob
import importlib.util
import os.path as osp
import re

import pytest
import torch
from conftest import assert_some_gradient, config_path
from mmengine.config import Config, ConfigDict
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import DefaultScope

from mmkdflow.models.connectors import DiffKDConnector
from mmkdflow.models.utils.model_builder import (build_mmkdflow_module,
                                                 build_task_model,
                                                 resolve_model_cfg)

DIFFKD_CONFIGS = sorted(glob.glob(config_path('diffkd', '*.py')))
DEMO_CONFIG = config_path(
    'demo', 'diffkd_retinanet-r18_retinanet-r18c16_fpn_1xb4-4e_digits-det.py')
TEACHER_URL = re.compile(r'^https://download\.openmmlab\.com/\S+\.pth$')
DET_CONFIGS = [p for p in DIFFKD_CONFIGS if p.endswith('_coco.py')]


def _ids(paths):
    return [osp.basename(p) for p in paths]


def _load(path: str) -> Config:
    return Config.fromfile(path)


def _scope(cfg: Config) -> str:
    """The downstream package that builds the student."""
    return resolve_model_cfg(cfg.model.student, 'student',
                             cfg.get('data_preprocessor'))[1]


# ------------------------------------------------------------- static checks
def test_every_paper_row_has_a_config():
    names = set(_ids(DIFFKD_CONFIGS))
    rows = {
        # Table 4, baseline teachers
        'diffkd_retinanet-r101_retinanet-r50_fpn_2x_coco.py',
        'diffkd_fcos-r101_fcos-r50_fpn_gn-head_ms-640-800-2x_coco.py',
        'diffkd_faster-rcnn-r101_faster-rcnn-r50_fpn_2x_coco.py',
        # Table 5, stronger teachers, and the attention-MSE variant
        'diffkd_retinanet-x101_retinanet-r50_fpn_2x_coco.py',
        'diffkd-attnmse_retinanet-x101_retinanet-r50_fpn_2x_coco.py',
        'diffkd_reppoints-x101_reppoints-r50_fpn-gn_head-gn_2x_coco.py',
        'diffkd_cascade-mask-rcnn-x101_faster-rcnn-r50_fpn_2x_coco.py',
        # Table 6
        'diffkd_deeplabv3-r101_deeplabv3-r18_4xb2-80k_cityscapes-512x1024.py',
        'diffkd_deeplabv3-r101_deeplabv3-r18-scratch_4xb2-80k_'
        'cityscapes-512x1024.py',
        'diffkd_deeplabv3-r101_pspnet-r18_4xb2-80k_cityscapes-512x1024.py',
        'diffkd_deeplabv3-r101_deeplabv3-mbv2_4xb2-80k_cityscapes-512x1024.py',
        # Table 2, with KL and with DIST on the logits
        'diffkd_resnet34_resnet18_8xb32_in1k.py',
        'diffkd-dist_resnet34_resnet18_8xb32_in1k.py',
        'diffkd_resnet50_mobilenet-v1_8xb32_in1k.py',
        'diffkd-dist_resnet50_mobilenet-v1_8xb32_in1k.py',
    }
    assert rows <= names, sorted(rows - names)
    assert osp.isfile(DEMO_CONFIG)


def _metafile_weights(package: str) -> str:
    """Text of every model-zoo metafile the installed package ships."""
    spec = importlib.util.find_spec(package)
    root = osp.join(spec.submodule_search_locations[0], '.mim', 'configs')
    texts = []
    for path in glob.glob(osp.join(root, '*', 'metafile.y*ml')):
        with open(path, encoding='utf-8') as f:
            texts.append(f.read())
    return '\n'.join(texts)


@pytest.mark.parametrize('path', DIFFKD_CONFIGS, ids=_ids(DIFFKD_CONFIGS))
def test_config_is_a_paper_row_runnable_by_tools_train(path):
    with open(path, encoding='utf-8') as f:
        header = f.read().split('\n_base_')[0]
    assert header.startswith('# DiffKD'), 'header comment names the method'
    assert re.search(r'Table \d', header), 'header names the paper table'
    assert re.search(r'\d+\.\d+', header), 'header carries the paper number'
    cfg = _load(path)
    assert cfg.custom_imports.imports == ['mmkdflow']
    assert cfg.custom_imports.allow_failed_imports is False
    scope = _scope(cfg)
    assert cfg.default_scope == scope
    assert cfg.model.type == 'Distiller'
    assert cfg.model._scope_ == 'mmkdflow'
    assert any(h.type == 'mmkdflow.StudentCheckpointHook'
               for h in cfg.custom_hooks)
    # a real OpenMMLab model-zoo URL, listed in the package's metafiles
    url = cfg.model.teacher_ckpt
    assert TEACHER_URL.match(url), url
    assert url in _metafile_weights(scope), url
    for point in cfg.model.distill_points.values():
        assert point.connector.type == 'DiffKDConnector'
        assert not point.get('replace', False)  # DiffKD only shapes the loss
    if scope == 'mmdet':
        assert cfg.train_cfg.max_epochs == 24  # 2x schedule
        weight = cfg.model.distill_points.fpn.connector.kd_loss.loss_weight
        assert weight == (15.0 if 'reppoints' in path else 5.0)


@pytest.mark.parametrize('path', DET_CONFIGS, ids=_ids(DET_CONFIGS))
def test_detection_denoiser_is_the_papers_efficient_one(path):
    """Shared over the five FPN levels at 256 channels: 207,872 parameters
    in the convolutions and BatchNorms (the paper's 0.21 M) plus the
    1280 x 256 time-embedding table."""
    connector = build_mmkdflow_module(
        _load(path).model.distill_points.fpn.connector)
    assert isinstance(connector, DiffKDConnector)
    assert connector.share_across_levels and len(connector.branches) == 1
    assert not connector.use_ae and connector.latent_channels == 256
    predictor = connector.branches[0]['predictor']
    embedding = predictor.time_embedding.weight.numel()
    total = sum(p.numel() for p in predictor.parameters())
    assert embedding == 1280 * 256 == 327_680
    assert total - embedding == 207_872


# ------------------------------------------------------ one training step
def _raw_batch(scope: str, path: str) -> dict:
    """A tiny batch as a dataloader yields it (uint8 images)."""
    gen = torch.Generator().manual_seed(0)
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData

        # RepPoints' deformable convs need P7 (stride 128) of at least 3x3;
        # at 128x128 P7 is 1x1, where BatchNorm (in the connector's noise
        # adapter) needs a second sample
        size, num = (384, 1) if 'reppoints' in path else (128, 2)
        images, samples = [], []
        for i in range(num):
            sample = DetDataSample(metainfo=dict(
                img_shape=(size, size), ori_shape=(size, size),
                scale_factor=(1.0, 1.0)))
            sample.gt_instances = InstanceData(
                bboxes=torch.tensor([[8.0, 10.0, 60.0, 70.0],
                                     [40.0, 30.0, 120.0, 110.0]]),
                labels=torch.tensor([1 + i, 7]))
            samples.append(sample)
            images.append(torch.randint(0, 256, (3, size, size),
                                        generator=gen, dtype=torch.uint8))
        return dict(inputs=images, data_samples=samples)
    if scope == 'mmseg':
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        images, samples = [], []
        for _ in range(2):  # ASPP / PPM image pooling needs 2 samples for BN
            label = torch.randint(0, 19, (1, 64, 128), generator=gen)
            label[:, :4] = 255  # unlabelled pixels, as in Cityscapes
            sample = SegDataSample(metainfo=dict(
                img_shape=(64, 128), ori_shape=(64, 128)))
            sample.gt_sem_seg = PixelData(data=label)
            samples.append(sample)
            images.append(torch.randint(0, 256, (3, 64, 128), generator=gen,
                                        dtype=torch.uint8))
        return dict(inputs=images, data_samples=samples)
    from mmpretrain.structures import DataSample
    images = [torch.randint(0, 256, (3, 64, 64), generator=gen,
                            dtype=torch.uint8) for _ in range(2)]
    return dict(inputs=images,
                data_samples=[DataSample().set_gt_label(i) for i in (3, 9)])


def _tiny_input_overrides(model_cfg: ConfigDict, scope: str) -> None:
    if scope == 'mmseg':
        # mmseg pads every batch to the 512x1024 crop; pad the tiny batch
        # to its own size instead (only the test input shrinks)
        model_cfg.student.setdefault('data_preprocessor', {})
        model_cfg.student.data_preprocessor['size'] = (64, 128)


def _build_and_step(path: str, tmp_path) -> None:
    cfg = _load(path)
    scope = _scope(cfg)
    model_cfg = copy.deepcopy(cfg.model)
    dp = cfg.get('data_preprocessor')
    if dp is not None:  # as MMEngine's Runner passes it
        model_cfg.setdefault('data_preprocessor', dp)
    _tiny_input_overrides(model_cfg, scope)

    torch.manual_seed(1)
    teacher = build_task_model(model_cfg.teacher, 'teacher', dp)
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'meta': {}, 'state_dict': teacher.state_dict()}, ckpt)
    model_cfg.teacher_ckpt = ckpt

    torch.manual_seed(0)  # a different random init than the saved one
    DefaultScope.get_instance(f'test-diffkd-{osp.basename(path)}',
                              scope_name=cfg.default_scope)
    model = MMENGINE_MODELS.build(model_cfg)  # as the Runner builds it
    saved = teacher.state_dict()
    loaded = model.teacher.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    del teacher, saved, loaded

    model.train()
    data = model.data_preprocessor(_raw_batch(scope, path), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total, log_vars = model.parse_losses(losses)
    for key, value in log_vars.items():
        assert torch.isfinite(torch.as_tensor(value)), key

    distill = 0.
    reads = []
    for name, point in cfg.model.distill_points.items():
        expected = ['loss_diff', 'loss_kd']
        if point.connector.get('use_ae', False):
            expected.append('loss_ae')
        for loss in expected:
            key = f'distill.{name}.{loss}'
            assert key in losses, sorted(losses)
            distill = distill + losses[key]
        reads.extend(model.student.get_submodule(point.student).parameters())
    # the distillation losses alone reach the student modules they read
    grads = torch.autograd.grad(distill, reads, retain_graph=True,
                                allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)

    total.backward()
    assert_some_gradient(model.student.parameters(), 'the student')
    assert_some_gradient(model.connectors.parameters(), 'the connectors')
    assert not model.teacher.training
    assert all(p.grad is None and not p.requires_grad
               for p in model.teacher.parameters())
    model.remove_hooks()


@pytest.mark.slow
@pytest.mark.parametrize('path', DIFFKD_CONFIGS, ids=_ids(DIFFKD_CONFIGS))
def test_config_builds_and_trains_one_step(path, tmp_path):
    _build_and_step(path, tmp_path)


def test_demo_config_builds_and_trains_one_step(tmp_path):
    cfg = _load(DEMO_CONFIG)
    connector = cfg.model.distill_points.fpn.connector
    assert (connector.student_channels, connector.teacher_channels,
            connector.latent_channels) == (64, 128, 128)
    assert connector.share_across_levels
    assert cfg.model.teacher_ckpt == Config.fromfile(config_path(
        'demo', 'pkd_retinanet-r18_retinanet-r18c16_fpn_1xb4-4e_digits-det.py')
    ).model.teacher_ckpt
    _build_and_step(DEMO_CONFIG, tmp_path)
