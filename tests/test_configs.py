"""Every shipped distillation config builds the way MMEngine's Runner builds
it and trains one step.

One test, parametrised over every distiller config under ``configs/`` (the
COCO, Cityscapes and ImageNet recipes are large and marked slow; the digits
demo and CIFAR-100 configs run by default), so a new config is tested
without touching this file: the teacher (if any) is built from its own
config and its random weights are saved as a real checkpoint that replaces
the config's URL (nothing is downloaded); the distiller is built through
the root registry in the config's default scope, with SyncBN reverted as
the Runner does without distribution; the teacher must hold exactly the
saved weights; one training step on a tiny raw batch (through the student's
data preprocessor) must give finite losses, every DiffKD point's
``loss_diff`` / ``loss_kd`` (``loss_ae`` with the autoencoder), gradients
from the distillation losses alone into the student modules the points
read, gradients into the student and the connectors, and none into the
teacher.

(What each method's recipes must say: test_recipes.py.)
"""
import copy

import pytest
import torch
from utils import (assert_some_gradient, config_path, distiller_configs,
                   save_random_teacher, student_scope)
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope

CONFIG_NAMES = distiller_configs()


def _is_small(name: str) -> bool:
    """The digits demo and the CIFAR-100 recipes (32x32 inputs, networks
    of at most 24 M parameters) run by default."""
    return name.startswith('demo/') or name.endswith('_cifar100.py')


def _params():
    return [pytest.param(name, id=name, marks=() if _is_small(name)
                         else pytest.mark.slow) for name in CONFIG_NAMES]


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
    size = 32 if 'digits' in name or 'cifar' in name else 64
    if 'swin' in name:  # Swin's last stage (stride 32) needs a 7 x 7 window
        size = 224
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
