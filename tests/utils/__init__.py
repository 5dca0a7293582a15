"""Helpers the test files share: tiny real models of mmdet, mmseg and
mmpretrain, their batches, the shipped distiller configs, FM-KT and DiffKD
builders, and loss-test inputs. Fixtures live in ``tests/conftest.py``."""
import copy
import functools
import glob
import os.path as osp

import torch
from mmengine.config import Config

from mmkdflow.models.connectors import BaseConnector, ConnectorOutput

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(ROOT, 'configs')


def config_path(*parts: str) -> str:
    return osp.join(CONFIGS, *parts)


def _base_model(file: str, scope: str) -> dict:
    """The model dict of ``configs/_base_/models/<file>``, in ``scope``."""
    cfg = Config.fromfile(config_path('_base_', 'models', file))
    model = copy.deepcopy(cfg.model.to_dict())
    model['_scope_'] = scope
    return model


def tiny_retinanet(base_channels: int = 8, fpn_channels: int = 16,
                   stacked_convs: int = 1) -> dict:
    """A real mmdet RetinaNet with a small ResNet-18 and FPN (the demo's
    RetinaNet with ``base_channels`` / ``fpn_channels`` / ``stacked_convs``
    head convs)."""
    model = _base_model('retinanet_r18_digits.py', 'mmdet')
    model['backbone']['base_channels'] = base_channels
    model['neck']['in_channels'] = [base_channels * 2, base_channels * 4,
                                    base_channels * 8]
    model['neck']['out_channels'] = fpn_channels
    model['bbox_head'].update(in_channels=fpn_channels,
                              feat_channels=fpn_channels,
                              stacked_convs=stacked_convs)
    return model


def tiny_deeplabv3(base_channels: int = 8) -> dict:
    """A real mmseg DeepLabV3 (ResNetV1c-18) with few channels."""
    model = _base_model('deeplabv3_r18_digits.py', 'mmseg')
    model['backbone'].update(stem_channels=base_channels,
                             base_channels=base_channels)
    model['decode_head'].update(in_channels=base_channels * 8,
                                channels=base_channels * 2)
    model['data_preprocessor']['size'] = (64, 64)
    return model


def tiny_resnet_cls(base_channels: int = 8) -> dict:
    """A real mmpretrain ImageClassifier (CIFAR ResNet-18)."""
    model = _base_model('resnet18_cifar_digits.py', 'mmpretrain')
    model['backbone'].update(stem_channels=base_channels,
                             base_channels=base_channels)
    model['head']['in_channels'] = base_channels * 8
    model['data_preprocessor'] = dict(
        type='ClsDataPreprocessor', num_classes=10, mean=[127.5] * 3,
        std=[64.0] * 3, to_rgb=True)
    return model


def det_batch(batch_size: int = 2, size: int = 64, seed: int = 0):
    """Preprocessed inputs and data samples with real-looking boxes."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch_size, 3, size, size, generator=gen)
    samples = []
    for i in range(batch_size):
        sample = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size),
            pad_shape=(size, size), scale_factor=(1.0, 1.0),
            batch_input_shape=(size, size)))
        inst = InstanceData()
        inst.bboxes = torch.tensor([[4.0, 6.0, 30.0, 34.0],
                                    [20.0, 18.0, 52.0, 60.0]])
        inst.labels = torch.tensor([i % 10, 3])
        sample.gt_instances = inst
        samples.append(sample)
    return inputs, samples


def seg_batch(batch_size: int = 2, size: int = 64, seed: int = 0):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch_size, 3, size, size, generator=gen)
    samples = []
    for _ in range(batch_size):
        sample = SegDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size),
            pad_shape=(size, size)))
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, 11, (1, size, size), generator=gen))
        samples.append(sample)
    return inputs, samples


def cls_batch(batch_size: int = 4, size: int = 32, seed: int = 0):
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch_size, 3, size, size, generator=gen)
    samples = [DataSample().set_gt_label(i % 10) for i in range(batch_size)]
    return inputs, samples


def save_random_teacher(teacher_cfg, path: str, data_preprocessor=None,
                        seed: int = 1) -> dict:
    """Build a teacher from its entry of a distiller config (a model dict
    or ``dict(cfg_path=...)``), save its random weights as a real
    checkpoint at ``path`` (to stand in for the config's URL, so nothing is
    downloaded) and return them."""
    from mmkdflow.models.utils import build_task_model
    torch.manual_seed(seed)
    model = build_task_model(copy.deepcopy(teacher_cfg), 'teacher',
                             data_preprocessor)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({'meta': {}, 'state_dict': state}, path)
    return state


def assert_some_gradient(parameters, what: str) -> None:
    """At least one of ``parameters`` holds a non-zero gradient."""
    grads = [p.grad for p in parameters if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads), \
        f'no gradient reaches {what}'


# -------------------------------------------------------------- distiller
FPN = dict(
    student='neck', teacher='neck', index=(0, 1, 2, 3, 4),
    connector=dict(type='ConvAdapter', in_channels=16, out_channels=32),
    loss=dict(type='MSELoss', loss_weight=2.0))


def det_distiller(saved_teacher, **kwargs):
    from mmkdflow.models import Distiller
    student, teacher = tiny_retinanet(8, 16), tiny_retinanet(16, 32)
    ckpt, state = saved_teacher(teacher)
    cfg = dict(student=student, teacher=teacher, teacher_ckpt=ckpt,
               distill_points=dict(fpn=FPN))
    cfg.update(kwargs)
    return Distiller(**cfg), state


class PoolLinearConnector(BaseConnector):
    """Test connector: pooled linear classifier on a backbone feature."""

    def __init__(self, channels: int, num_classes: int, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.fc = torch.nn.Linear(channels, num_classes)

    def forward(self, student, teacher, ctx, replaced=None):
        return ConnectorOutput(
            student=[self.fc(s.mean(dim=(2, 3))) for s in student])


# -------------------------------------------------------- shipped configs
@functools.lru_cache(maxsize=None)
def _distiller_config_names() -> tuple:
    from test_config_names import ALIASES
    paths = []
    for path in sorted(glob.glob(osp.join(CONFIGS, '*', '*.py'))):
        name = osp.relpath(path, CONFIGS)
        if name.startswith('_base_') or name in ALIASES:
            continue
        if Config.fromfile(path).model.type.endswith('Distiller'):
            paths.append(name)
    return tuple(paths)


def distiller_configs() -> list:
    """Every shipped config whose model is a distiller (the former name
    kept as an alias is checked by tests/test_config_names.py), read once
    per session."""
    return list(_distiller_config_names())


def student_scope(cfg: Config) -> str:
    """The downstream package that builds the student."""
    from mmkdflow.models.utils import resolve_model_cfg
    return resolve_model_cfg(cfg.model.student, 'student',
                             cfg.get('data_preprocessor'))[1]


# ------------------------------------------------------------------ FM-KT
F64 = dict(dtype=torch.float64)


def rms_input(rms: float, shape=(2, 16, 7, 7), seed=0) -> torch.Tensor:
    """A feature map whose per-pixel RMS over channels is about ``rms``."""
    gen = torch.Generator().manual_seed(seed)
    return rms * torch.randn(*shape, generator=gen)


def perturb_gains(conn, seed=0):
    """Move every velocity gain off its identity start (0), so the flow
    does something."""
    gen = torch.Generator().manual_seed(seed)
    for field in conn.flows.fields.values():
        with torch.no_grad():
            field.velocity_gain.copy_(torch.randn(
                field.velocity_gain.shape, generator=gen))
    return conn


# ----------------------------------------------------------------- DiffKD
def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def connector(**kwargs):
    """A ``DiffKDConnector`` from 8 student to 16 teacher channels, with
    ``kwargs`` on top."""
    from mmkdflow.models.diffkd import DiffKDConnector
    cfg = dict(student_channels=8, teacher_channels=16)
    cfg.update(kwargs)
    return DiffKDConnector(**cfg)


# ----------------------------------------------------------------- losses
B, K = 4, 5
FEAT = (2, 3, 4, 5)


def close(actual, expected, rtol=1e-5, atol=1e-6):
    torch.testing.assert_close(
        actual, torch.as_tensor(expected, dtype=actual.dtype),
        rtol=rtol, atol=atol)


def rand(*shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen)


def make_ctx(labels, epoch=0):
    from types import SimpleNamespace

    from mmkdflow.models.core import DistillContext
    samples = [SimpleNamespace(gt_label=torch.tensor([int(y)]))
               for y in labels]
    return DistillContext(data_samples=samples, epoch=epoch)


# ----------------------------------------------------------- digits files
def _read(path):
    with open(path, 'rb') as f:
        return f.read()


def _png(path):
    import numpy as np
    from PIL import Image
    return np.asarray(Image.open(path))
