"""What each method's recipes must say: paper rows, teachers, denoiser."""
import glob
import importlib.util
import os.path as osp
import re

import pytest
from utils import config_path, distiller_configs, student_scope
from mmengine.config import Config

from mmkdflow.models.diffkd import DiffKDConnector
from mmkdflow.models.utils import build_mmkdflow_module

TEACHER_URL = re.compile(r'^https://download\.openmmlab\.com/\S+\.pth$')
#: CIFAR-100 teachers without an OpenMMLab checkpoint, trained with strategy
#: A1 (configs/diffkd/README.md, "CIFAR-100 teachers")
CIFAR_TEACHER = re.compile(
    r'^work_dirs/cifar100_teachers/[a-z0-9-]+/epoch_240\.pth$')
RECIPES = [n for n in distiller_configs() if not n.startswith('demo/')]


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
        # CIFAR-100, the pairs of the released classification code
        *(f'fmkt_{pair}_1xb64_cifar100.py' for pair in (
            'resnet56_resnet20', 'resnet110_resnet20', 'resnet110_resnet32',
            'resnet32x4_resnet8x4', 'wrn-40-2_wrn-40-1', 'wrn-40-2_wrn-16-2',
            'vgg13_vgg8', 'vgg13_mobilenet-v2', 'resnet32x4_shufflenet-v1',
            'wrn-40-2_shufflenet-v1')),
        'fmkt-theta_resnet56_resnet20_1xb64_cifar100.py',
        'ofmkt_resnet20_1xb64_cifar100.py',
        # the released DeiT recipe
        'fmkt_deit3-small_deit-tiny_4xb256_in1k.py',
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
        # Table 9, CIFAR-100
        *(f'diffkd_{pair}_1xb64_cifar100.py' for pair in (
            'wrn-40-2_wrn-40-1', 'resnet56_resnet20', 'resnet32x4_resnet8x4',
            'resnet50_mobilenet-v2', 'resnet32x4_shufflenet-v1',
            'resnet32x4_shufflenet-v2')),
        # Table 3, stronger teachers and strategies
        *(f'diffkd_resnet50-rsb-a1_{student}_8xb96-b2-450e_in1k.py'
          for student in ('resnet34', 'mobilenet-v2', 'efficientnet-b0')),
        'diffkd_swin-l_resnet50_8xb96-b2-450e_in1k.py',
        'diffkd_swin-l_swin-t_8xb128-b3-300e_in1k.py',
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
        assert TEACHER_URL.match(url) or (
            name.endswith('_cifar100.py') and CIFAR_TEACHER.match(url)), url
    if not name.startswith('diffkd/'):
        return
    # DiffKD: an official model-zoo teacher (where one exists), hooks, and
    # the paper schedule
    url = cfg.model.teacher_ckpt
    if TEACHER_URL.match(url):
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


@pytest.mark.parametrize('name', [n for n in RECIPES
                                  if n.endswith('_cifar100.py')])
def test_cifar100_recipes_follow_strategy_a1(name):
    """DiffKD's Table 1, A1: 240 epochs, batch 64, SGD lr 0.05, momentum
    0.9, weight decay 5e-4, lr x 0.1 at 150/180/210, crop + flip, on
    mmpretrain's CIFAR100 in data/cifar100; FM-KT adds the released
    script's Nesterov momentum."""
    cfg = Config.fromfile(config_path(name))
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.momentum,
            optimizer.weight_decay) == ('SGD', 0.05, 0.9, 5e-4)
    assert optimizer.get('nesterov', False) == (not name.startswith(
        'diffkd/'))
    assert (cfg.param_scheduler.milestones, cfg.param_scheduler.gamma) == (
        [150, 180, 210], 0.1)
    assert cfg.train_cfg.max_epochs == 240
    assert cfg.train_dataloader.batch_size == 64
    train, val = cfg.train_dataloader.dataset, cfg.val_dataloader.dataset
    assert (train.type, train.data_root, train.split) == (
        'CIFAR100', 'data/cifar100', 'train')
    assert (val.type, val.data_root, val.split) == (
        'CIFAR100', 'data/cifar100', 'test')
    assert [t.type for t in train.pipeline] == [
        'RandomCrop', 'RandomFlip', 'PackInputs']
    assert cfg.data_preprocessor.num_classes == 100


def test_cifar100_train_pipeline_pads_crops_and_packs():
    import numpy as np
    import torch
    from mmcv.transforms import Compose
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(config_path('_base_', 'datasets',
                                      'cifar100_bs64.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = Compose(cfg.train_pipeline)
    np.random.seed(0)
    image = np.full((32, 32, 3), 255, dtype=np.uint8)
    crops = [pipeline(dict(img=image, gt_label=7)) for _ in range(8)]
    for out in crops:
        assert out['inputs'].shape == (3, 32, 32)
        assert out['data_samples'].gt_label.tolist() == [7]
        assert set(out['inputs'].unique().tolist()) <= {0, 255}
    # the 4-pixel zero padding shows in some random crops
    assert any((out['inputs'] == 0).any() for out in crops)
    assert all(out['inputs'].dtype == torch.uint8 for out in crops)


def test_demo_diffkd_shares_the_pkd_teacher():
    demo = Config.fromfile(config_path(
        'demo', 'diffkd_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-'
        'det.py'))
    connector = demo.model.distill_points.fpn.connector
    assert (connector.student_channels, connector.teacher_channels,
            connector.latent_channels) == (64, 128, 128)
    assert connector.share_across_levels
    assert demo.model.teacher_ckpt == Config.fromfile(config_path(
        'demo', 'pkd_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-'
        'det.py')).model.teacher_ckpt
