"""The models, inputs and connector configs the benchmark measures.

Everything has random weights: the cost of a network does not depend on its
values. Package configs are used as they are, with the backbones'
``init_cfg`` removed so nothing is ever downloaded.
"""
import copy
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

STUDENT_CFG = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
TEACHER_CFG = 'mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py'
FPN_LEVELS = (0, 1, 2, 3, 4)
#: FM-KT's RetinaNet recipe: w = 10 per level, 0 on the last one.
FMKT_LEVEL_WEIGHTS = [10.0, 10.0, 10.0, 10.0, 0.0]


def padded_size(height: int, width: int, divisor: int = 32
                ) -> Tuple[int, int]:
    """The batch shape mmdet's ``DetDataPreprocessor`` pads to."""
    return (int(math.ceil(height / divisor) * divisor),
            int(math.ceil(width / divisor) * divisor))


def detector_entry(cfg_path: str) -> dict:
    """A student/teacher entry of a package config with random weights."""
    return dict(cfg_path=cfg_path, backbone=dict(init_cfg=None))


def build_detector(cfg_path: str, device: torch.device) -> nn.Module:
    """Build a detector of a (package) config, random weights."""
    from mmkdflow.models.utils.model_builder import build_task_model
    return build_task_model(detector_entry(cfg_path), 'model').to(device)


def det_batch(batch: int, height: int, width: int, device: torch.device,
              seed: int = 0) -> Tuple[Tensor, list]:
    """Normalised random images (already padded) and data samples with
    three ground-truth boxes each, as the data preprocessor hands them to
    the model."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, height, width, generator=gen)
    samples = []
    for i in range(batch):
        sample = DetDataSample(metainfo=dict(
            img_shape=(height, width), ori_shape=(height, width),
            pad_shape=(height, width), scale_factor=(1.0, 1.0),
            batch_input_shape=(height, width)))
        corners = torch.rand(3, 2, 2, generator=gen)
        low, high = corners.min(dim=1).values, corners.max(dim=1).values
        high = torch.maximum(high, low + 0.1).clamp(max=1.0)
        scale = torch.tensor([width, height], dtype=torch.float32)
        inst = InstanceData()
        inst.bboxes = torch.cat([low * scale, high * scale], dim=1)
        inst.labels = torch.tensor([i % 80, 3, 17])
        sample.gt_instances = inst.to(device)
        samples.append(sample)
    return inputs.to(device), samples


def fpn_shapes(student: nn.Module, inputs: Tensor) -> List[torch.Size]:
    """Shapes of the student's FPN levels for ``inputs``."""
    with torch.no_grad():
        return [f.shape for f in student.extract_feat(inputs)]


def random_fpn_features(student: nn.Module, inputs: Tensor,
                        device: torch.device, seed: int
                        ) -> Tuple[List[torch.Size], List[Tensor],
                                   List[Tensor]]:
    """``(shapes, student_feats, teacher_feats)``: random tensors of the
    student's FPN shapes for ``inputs`` (the student's require grad), the
    inputs a connector meets in a distillation step."""
    shapes = fpn_shapes(student, inputs)
    gen = torch.Generator().manual_seed(seed)
    s_feats = [torch.randn(s, generator=gen).to(device).requires_grad_()
               for s in shapes]
    t_feats = [torch.randn(s, generator=gen).to(device) for s in shapes]
    return shapes, s_feats, t_feats


def diffkd_connector_cfg(channels: int) -> dict:
    """DiffKD on RetinaNet FPN levels: one shared denoiser, no AE, MSE
    with l3 = 5 (the paper's RetinaNet weight)."""
    return dict(type='DiffKDConnector', student_channels=channels,
                teacher_channels=channels,
                kd_loss=dict(type='MSELoss', loss_weight=5.0))


def fmkt_connector_cfg(channels: int, num_steps: int, theta: bool = False,
                       level_weights: Optional[Sequence[float]] = None
                       ) -> dict:
    """FM-KT on RetinaNet FPN levels: shared convnext meta-encoder,
    rectified flow, PKD per step."""
    cfg = dict(type='FMKTFeatureConnector', channels=channels,
               meta_encoder='convnext', num_steps=num_steps, theta=theta,
               distance=dict(type='PKDLoss', loss_weight=1.0))
    if level_weights is not None:
        cfg['level_weights'] = list(level_weights)
    return cfg


def method_points(channels: int) -> Dict[str, Tuple[dict, bool]]:
    """The distillation methods of the step and export sections: their
    FPN connector config and whether it replaces the student's levels."""
    return {
        'DiffKD': (diffkd_connector_cfg(channels), False),
        'FM-KT (N=4)': (fmkt_connector_cfg(
            channels, 4, level_weights=FMKT_LEVEL_WEIGHTS), True),
        'FM-KT-Theta (N=4)': (fmkt_connector_cfg(
            channels, 4, theta=True, level_weights=FMKT_LEVEL_WEIGHTS),
            True),
    }


def distiller_cfg(student_cfg: str, teacher_cfg: Optional[str],
                  connector: dict, replace: bool) -> dict:
    """An ``Distiller`` config on the five FPN levels."""
    point = dict(student='neck', index=FPN_LEVELS, replace=replace,
                 connector=copy.deepcopy(connector))
    cfg = dict(type='Distiller', student=detector_entry(student_cfg),
               distill_points=dict(fpn=point))
    if teacher_cfg is not None:
        point['teacher'] = 'neck'
        cfg.update(teacher=detector_entry(teacher_cfg),
                   allow_random_teacher=True)
    return cfg


def build_distiller(cfg: dict, device: torch.device) -> nn.Module:
    """Build an ``Distiller`` from :func:`distiller_cfg`."""
    from mmkdflow.models import Distiller
    kwargs = {k: v for k, v in copy.deepcopy(cfg).items() if k != 'type'}
    return Distiller(**kwargs).to(device)


def build_connector(cfg: dict, device: torch.device) -> nn.Module:
    """Build a connector config in the mmkdflow scope."""
    from mmkdflow.models.utils.model_builder import build_mmkdflow_module
    return build_mmkdflow_module(copy.deepcopy(cfg)).to(device)


def export_model(distiller_config: dict, student: nn.Module,
                 connector: nn.Module, device: torch.device
                 ) -> Tuple[nn.Module, str]:
    """Export a distiller with :func:`~mmkdflow.engine.student_export.
    export_distiller` (what ``tools/export_student.py`` does) and build the
    exported model with its weights.

    The distiller checkpoint is made of ``student``'s and ``connector``'s
    weights, as a trained distiller would save them.

    Returns:
        The exported model (in eval mode) and what it is: ``'student'``
        (the vanilla downstream model) or ``'student+flow'`` (an
        ``Distiller`` without teacher, holding the flow).
    """
    from mmengine.config import Config
    from mmengine.registry import MODELS

    from mmkdflow.engine.student_export import export_distiller
    from mmkdflow.models.utils.model_builder import build_task_model
    state = {f'student.{k}': v for k, v in student.state_dict().items()}
    state.update({f'connectors.fpn.{k}': v
                  for k, v in connector.state_dict().items()})
    cfg = Config(dict(model=copy.deepcopy(distiller_config),
                      default_scope='mmdet'))
    ckpt, out_cfg = export_distiller(cfg, {'meta': {}, 'state_dict': state})
    model_cfg = out_cfg.model.to_dict()
    if str(model_cfg.get('type', '')).startswith('mmkdflow.'):
        model, kind = MODELS.build(model_cfg), 'student+flow'
    else:
        model_cfg['_scope_'] = out_cfg.default_scope
        model, kind = build_task_model(model_cfg, 'exported student'), \
            'student'
    model.load_state_dict(ckpt['state_dict'], strict=True)
    return model.to(device).eval(), kind
