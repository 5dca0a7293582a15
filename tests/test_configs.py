"""Every shipped distillation config builds the way MMEngine's Runner builds
it and trains one step.

One test, parametrised over every distiller config under ``configs/``
(the COCO, Cityscapes and ImageNet recipes are large and marked slow; the
digits demo configs run by default), so a new config is tested without
touching this file: the teacher (if any) is built from its own config and
its random weights are saved as a real checkpoint that replaces the
config's URL (nothing is downloaded); the distiller is built through the
root registry in the config's default scope, with SyncBN reverted as the
Runner does without distribution; the teacher must hold exactly the saved
weights; one training step on a tiny raw batch (through the student's data
preprocessor) must give finite losses, every DiffKD point's ``loss_diff`` /
``loss_kd`` (``loss_ae`` with the autoencoder), gradients from the
distillation losses alone into the student modules the points read,
gradients into the student and the connectors, and none into the teacher.

Then what each method's recipes must say (paper rows present, official
teacher weights, the DiffKD detection denoiser's size).
"""
import copy
import glob
import importlib.util
import os.path as osp
import re

import pytest
import torch
from conftest import (CONFIGS, assert_some_gradient, config_path,
                      save_random_teacher)
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope
from test_config_names import ALIASES

from mmkdflow.models.connectors import DiffKDConnector
from mmkdflow.models.utils import build_mmkdflow_module, resolve_model_cfg

TEACHER_URL = re.compile(r'^https://download\.openmmlab\.com/\S+\.pth$')


def distiller_configs() -> list:
    """Every shipped config whose model is a distiller (the former name
    kept as an alias is checked by tests/test_config_names.py)."""
    paths = []
    for path in sorted(glob.glob(osp.join(CONFIGS, '*', '*.py'))):
        name = osp.relpath(path, CONFIGS)
        if name.startswith('_base_') or name in ALIASES:
            continue
        if Config.fromfile(path).model.type.endswith('Distiller'):
            paths.append(name)
    return paths


CONFIG_NAMES = distiller_configs()
RECIPES = [n for n in CONFIG_NAMES if not n.startswith('demo/')]


def _params():
    return [pytest.param(name, id=name, marks=() if name.startswith('demo/')
                         else pytest.mark.slow) for name in CONFIG_NAMES]


def student_scope(cfg: Config) -> str:
    """The downstream package that builds the student."""
    return resolve_model_cfg(cfg.model.student, 'student',
                             cfg.get('data_preprocessor'))[1]


def raw_batch(scope: str, name: str) -> dict:
    """A tiny batch as a dataloader yields it (uint8 images)."""
    gen = torch.Generator().manual_seed(0)
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData

        # RepPoints' deformable convs (mmcv's CPU kernel) need P7 (stride
        # 128) of at least 3x3; at 128x128 P7 is 1x1, where BatchNorm (in
        # DiffKD's noise adapter) needs a second sample
        size, num = (384, 1) if 'reppoints' in name else (128, 2)
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
            # labels of the smallest label set (11 digits classes)
            label = torch.randint(0, 11, (1, 64, 128), generator=gen)
            if 'cityscapes' in name:
                label[:, :, :4] = 255  # unlabelled pixels, as in Cityscapes
            sample = SegDataSample(metainfo=dict(
                img_shape=(64, 128), ori_shape=(64, 128)))
            sample.gt_sem_seg = PixelData(data=label)
            samples.append(sample)
            images.append(torch.randint(0, 256, (3, 64, 128), generator=gen,
                                        dtype=torch.uint8))
        return dict(inputs=images, data_samples=samples)
    from mmpretrain.structures import DataSample
    size = 32 if 'digits' in name else 64
    images = [torch.randint(0, 256, (3, size, size), generator=gen,
                            dtype=torch.uint8) for _ in range(4)]
    return dict(inputs=images, data_samples=[
        DataSample().set_gt_label(i) for i in (3, 9, 0, 5)])


def build_as_the_runner(cfg: Config, tmp_path):
    """The config's distiller built as MMEngine's Runner builds it, with a
    random teacher saved as a local checkpoint in place of its URL.

    Returns:
        The model and the saved teacher weights (``None`` without a
        teacher).
    """
    model_cfg = copy.deepcopy(cfg.model)
    dp = cfg.get('data_preprocessor')
    if dp is not None:  # as the Runner passes it
        model_cfg.setdefault('data_preprocessor', dp)
    if student_scope(cfg) == 'mmseg':
        # mmseg pads every batch to the training crop; pad the tiny batch
        # to its own size instead (only the test input shrinks)
        model_cfg.student.setdefault('data_preprocessor', {})
        model_cfg.student.data_preprocessor['size'] = (64, 128)
    saved = None
    if model_cfg.get('teacher') is not None:
        ckpt = str(tmp_path / 'teacher.pth')
        saved = save_random_teacher(model_cfg.teacher, ckpt, dp)
        model_cfg.teacher_ckpt = ckpt
    torch.manual_seed(0)  # a different random init than the saved one
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = revert_sync_batchnorm(ROOT_MODELS.build(model_cfg))
    return model, saved


@pytest.mark.parametrize('name', _params())
def test_config_builds_and_trains_one_step(name, tmp_path):
    cfg = Config.fromfile(config_path(name))
    assert cfg.custom_imports.imports == ['mmkdflow']
    assert cfg.custom_imports.allow_failed_imports is False
    model, saved = build_as_the_runner(cfg, tmp_path)
    if saved is None:
        assert model.teacher is None and cfg.model.get('teacher') is None
    else:
        loaded = model.teacher.state_dict()
        assert saved.keys() == loaded.keys()
        assert all(torch.equal(saved[k], loaded[k]) for k in saved)
        del saved, loaded

    model.train()
    data = model.data_preprocessor(raw_batch(student_scope(cfg), name), True)
    losses = model(**data, mode='loss')
    total, log_vars = model.parse_losses(losses)
    for key, value in log_vars.items():
        assert torch.isfinite(torch.as_tensor(value)), key
    distill = [v for k, v in losses.items() if k.startswith('distill.')]
    assert distill, sorted(losses)
    reads = []
    for point_name, point in cfg.model.distill_points.items():
        if point.get('connector', {}).get('type') == 'DiffKDConnector':
            expected = ['loss_diff', 'loss_kd'] + (
                ['loss_ae'] if point.connector.get('use_ae') else [])
            for loss in expected:
                assert f'distill.{point_name}.{loss}' in losses, \
                    sorted(losses)
        reads.extend(model.student.get_submodule(point.student).parameters())
    # the distillation losses alone reach the student modules they read
    grads = torch.autograd.grad(sum(distill), reads, retain_graph=True,
                                allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)

    total.backward()
    assert_some_gradient(model.student.parameters(), 'the student')
    if any(True for _ in model.connectors.parameters()):
        assert_some_gradient(model.connectors.parameters(), 'the connectors')
    if model.teacher is not None:
        assert not model.teacher.training
        assert all(p.grad is None and not p.requires_grad
                   for p in model.teacher.parameters())
    model.remove_hooks()


# ----------------------------------------------------- what recipes say
def test_every_paper_row_has_a_config():
    names = {osp.basename(n) for n in RECIPES}
    fmkt = {
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
    }
    diffkd = {
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
        'diffkd_deeplabv3-r101_deeplabv3-r18-scratch_4xb2-80k_cityscapes-'
        '512x1024.py',
        'diffkd_deeplabv3-r101_pspnet-r18_4xb2-80k_cityscapes-512x1024.py',
        'diffkd_deeplabv3-r101_deeplabv3-mbv2_4xb2-80k_cityscapes-512x1024.py',
        # Table 2, with KL and with DIST on the logits
        'diffkd_resnet34_resnet18_8xb32_in1k.py',
        'diffkd-dist_resnet34_resnet18_8xb32_in1k.py',
        'diffkd_resnet50_mobilenet-v1_8xb32_in1k.py',
        'diffkd-dist_resnet50_mobilenet-v1_8xb32_in1k.py',
    }
    assert (fmkt | diffkd) <= names, sorted((fmkt | diffkd) - names)


def _metafile_weights(package: str) -> str:
    """Text of every model-zoo metafile the installed package ships."""
    spec = importlib.util.find_spec(package)
    root = osp.join(spec.submodule_search_locations[0], '.mim', 'configs')
    texts = []
    for path in glob.glob(osp.join(root, '*', 'metafile.y*ml')):
        with open(path, encoding='utf-8') as f:
            texts.append(f.read())
    return '\n'.join(texts)


@pytest.mark.parametrize('name', RECIPES)
def test_recipe_is_runnable_by_tools_train(name):
    cfg = Config.fromfile(config_path(name))
    scope = student_scope(cfg)
    assert cfg.default_scope == scope
    assert cfg.model.type == 'Distiller' and cfg.model._scope_ == 'mmkdflow'
    if cfg.model.get('teacher') is not None:
        url = cfg.model.teacher_ckpt
        assert TEACHER_URL.match(url), url
    if not name.startswith('diffkd/'):
        return
    # DiffKD: an official model-zoo teacher, hooks, and the paper schedule
    url = cfg.model.teacher_ckpt
    assert url in _metafile_weights(scope), url
    assert any(h.type == 'mmkdflow.StudentCheckpointHook'
               for h in cfg.custom_hooks)
    for point in cfg.model.distill_points.values():
        assert point.connector.type == 'DiffKDConnector'
        assert not point.get('replace', False)  # DiffKD only shapes the loss
    if scope == 'mmdet':
        assert cfg.train_cfg.max_epochs == 24  # 2x schedule
        weight = cfg.model.distill_points.fpn.connector.kd_loss.loss_weight
        assert weight == (15.0 if 'reppoints' in name else 5.0)


@pytest.mark.parametrize('name', [n for n in RECIPES if n.startswith(
    'diffkd/') and n.endswith('_coco.py')])
def test_diffkd_detection_denoiser_is_the_papers_efficient_one(name):
    """Shared over the five FPN levels at 256 channels: 207,872 parameters
    in the convolutions and BatchNorms (the paper's 0.21 M) plus the
    1280 x 256 time-embedding table."""
    connector = build_mmkdflow_module(
        Config.fromfile(config_path(name)).model.distill_points.fpn.connector)
    assert isinstance(connector, DiffKDConnector)
    assert connector.share_across_levels and len(connector.branches) == 1
    assert not connector.use_ae and connector.latent_channels == 256
    predictor = connector.branches[0]['predictor']
    embedding = predictor.time_embedding.weight.numel()
    total = sum(p.numel() for p in predictor.parameters())
    assert embedding == 1280 * 256 == 327_680
    assert total - embedding == 207_872


def test_demo_diffkd_shares_the_pkd_teacher():
    demo = Config.fromfile(config_path(
        'demo', 'diffkd_retinanet-r18_retinanet-r18c16_fpn_1xb4-4e_digits-'
        'det.py'))
    connector = demo.model.distill_points.fpn.connector
    assert (connector.student_channels, connector.teacher_channels,
            connector.latent_channels) == (64, 128, 128)
    assert connector.share_across_levels
    assert demo.model.teacher_ckpt == Config.fromfile(config_path(
        'demo', 'pkd_retinanet-r18_retinanet-r18c16_fpn_1xb4-4e_digits-'
        'det.py')).model.teacher_ckpt
