"""Student, refined student and teacher features of one image, read from a
trained distiller (for :mod:`tools/visualize_features.py`)."""
import copy
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config
from torch import Tensor

from mmkdflow.engine.checkpoint import (extract_state_dict,
                                        load_checkpoint_file,
                                        load_weights_strictly)
from mmkdflow.models.distillers.distill_point import DistillPoint, select
from mmkdflow.models.recorders.module_recorder import resolve_module


@dataclass
class FeatureSet:
    """The three feature maps of one image and where they come from.

    Attributes:
        student: The student's tensor at the chosen point and level.
        refined: What the connector makes of it (DiffKD: the denoised
            latent ``z_s``; FM-KT: the mean prediction ``mean_i Xhat_i``;
            other connectors: their inference output).
        teacher: The teacher's tensor at the same point and level.
        refined_name: A short description of ``refined``.
        meta: The image's metainfo (shapes for mapping back onto it).
    """

    student: Tensor
    refined: Tensor
    teacher: Tensor
    refined_name: str
    meta: Dict = field(default_factory=dict)


def load_distiller(cfg: Config, checkpoint: str,
                   device: str = 'cpu') -> nn.Module:
    """Build the config's distiller and load a distiller checkpoint.

    A distiller checkpoint that holds the teacher's weights (``teacher.*``)
    gets a teacher built without reading ``teacher_ckpt``. Otherwise (a
    teacher-free checkpoint) the teacher comes from ``teacher_ckpt`` and the
    distiller checks its hash against the checkpoint's. Either way the
    checkpoint is loaded strictly.

    Raises:
        CheckpointError: On missing, unexpected or mis-shaped weights.
    """
    from mmengine.registry import MODELS
    state = extract_state_dict(load_checkpoint_file(checkpoint),
                               'checkpoint')
    model_cfg = copy.deepcopy(cfg.model)
    has_teacher = any(k.startswith('teacher.') for k in state)
    if has_teacher:
        model_cfg.update(teacher_ckpt=None, allow_random_teacher=True)
    model_cfg.setdefault('_scope_', 'mmkdflow')
    model = MODELS.build(model_cfg)
    load_weights_strictly(model, state, 'checkpoint', checkpoint)
    return model.to(device).eval()


def pick_point(model: nn.Module, name: Optional[str]) -> DistillPoint:
    """The distillation point to show (default: the first with a teacher).

    Raises:
        ValueError: For an unknown name or no point reading the teacher.
    """
    points = {p.name: p for p in model.points if p.teacher is not None}
    if name is None:
        if not points:
            raise ValueError('the distiller has no point reading the teacher')
        return next(iter(points.values()))
    if name not in points:
        raise ValueError(f'no distillation point {name!r} reading the '
                         f'teacher; points: {", ".join(points) or "none"}')
    return points[name]


def _capture(model: nn.Module, path: str, role: str, run) -> object:
    """The output of ``model``'s module ``path`` during ``run()`` (a plain
    forward hook: the distiller's recorders stay passive, so a ``replace``
    connector does not alter it)."""
    module = resolve_module(model, path, role)
    outputs: List[object] = []
    handle = module.register_forward_hook(
        lambda mod, args, out: outputs.append(out))
    try:
        run()
    finally:
        handle.remove()
    if not outputs:
        raise RuntimeError(f'{role} module {path!r} did not run')
    return outputs[0]


def refine(connector: Optional[nn.Module], student: List[Tensor],
           level: int) -> Tuple[Tensor, str]:
    """The connector's refined version of ``student[level]`` in eval mode
    (:meth:`~mmkdflow.models.connectors.BaseConnector.refined_student`);
    with no connector, the student itself."""
    if connector is None:
        return student[level], 'student (no connector)'
    return connector.refined_student(student, level)


def collect_features(model: nn.Module, data: Dict, point: DistillPoint,
                     level: int, seed: int = 0) -> FeatureSet:
    """Run teacher and student on one preprocessed-to-be batch ``data``
    (the pipeline's packed output, collated) and return the features of
    ``point`` at entry ``level`` of its selected tensors.

    Raises:
        IndexError: If ``level`` is not one of the point's entries.
    """
    model.eval()
    data = model.data_preprocessor(data, False)
    inputs, samples = data['inputs'], data['data_samples']
    with torch.no_grad():
        raw_t = _capture(model.teacher, point.teacher, 'teacher',
                         lambda: model.teacher(inputs, samples,
                                               mode='tensor'))
        raw_s = _capture(model.student, point.student, 'student',
                         lambda: model.student(inputs, samples,
                                               mode='tensor'))
        student = select(raw_s, point.student_index, 'student')
        teacher = select(raw_t, point.teacher_index, 'teacher')
        if not -len(student) <= level < len(student):
            raise IndexError(f'point {point.name!r} has {len(student)} '
                             f'entries (levels); got --level {level}')
        level = level % len(student)
        connector = model.connectors[point.name] \
            if point.name in model.connectors else None
        torch.manual_seed(seed)  # the DiffKD start noise
        refined, name = refine(connector, student, level)
    meta = dict(samples[0].metainfo) if samples is not None else {}
    meta.setdefault('batch_input_shape', tuple(inputs.shape[-2:]))
    return FeatureSet(student[level][0], refined[0], teacher[level][0],
                      name, meta)
