"""Offline teacher -> student distillation as one MMEngine ``BaseModel``."""
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from torch import Tensor

from mmkdflow.registry import MODELS
from ..connectors.base import BaseConnector, ConnectorOutput
from ..recorders import ModuleOutputRecorder
from ..utils import DistillContext, build_mmkdflow_module, build_task_model
from .distill_point import DistillPoint, put_back, select
from .nonfinite import NONFINITE_POLICIES, NonFiniteGuardMixin
from .pretrained import fetch_pretrained
from .teacher import load_teacher
from .validation import about_point, check_nonnegative_weight, check_points

_TEACHER_FORWARDS = ('auto', 'extract_feat', 'tensor')


@MODELS.register_module()
class OfflineDistiller(NonFiniteGuardMixin, BaseModel):
    """Wraps a trainable student and a frozen teacher.

    In training (``mode='loss'``) the teacher runs first under ``no_grad``
    and its hooked modules are recorded; then the student computes its own
    losses while its hooked modules are recorded (and, for points with
    ``replace=True``, transformed by their connector, so the connector's
    output flows on into the student's head). Each distillation point then
    turns its (student, teacher) tensors into losses. Validation and test
    run the student alone (with its replacing connectors).

    Args:
        student: Student model dict, or ``dict(cfg_path='mmdet::...')``.
        teacher: Teacher model dict or ``dict(cfg_path=...)``.
        teacher_ckpt: Path or URL of the teacher's trained weights, loaded on
            CPU with safe loading and checked key by key.
        allow_random_teacher: Set to ``True`` to distill from a randomly
            initialised teacher on purpose (tests, timing). Without it a
            missing ``teacher_ckpt`` is an error.
        distill_points: ``dict(name=dict(student=..., teacher=..., index=...,
            connector=..., loss=..., replace=...))``; see
            :class:`DistillPoint`.
        teacher_forward: ``'extract_feat'`` runs only the teacher's
            backbone/neck, ``'tensor'`` its full tensor forward (for logits),
            ``'auto'`` picks ``extract_feat`` when every teacher path lies in
            the backbone or neck.
        student_loss_weight: Factor (>= 0) on the student's own task
            losses; 0 leaves the student to the distillation losses alone.
        predict_with: ``'student'`` (default) or ``'teacher'``: which model
            answers ``val_step``/``test_step``.
        nonfinite: What a NaN/Inf loss does. ``'raise'`` (default): stop
            the run with :class:`NonFiniteLossError` naming the loss, its
            distillation point and the step, before any weight or
            checkpoint is touched. ``'skip'``: log a warning and skip that
            step's update (single-process training only; under DDP every
            rank would have to agree, so it raises instead). ``'off'``: no
            check (saves one host synchronisation per step).
        data_preprocessor: The distiller always uses the student's data
            preprocessor; a dict given here (MMEngine's ``Runner`` passes the
            config's top-level ``data_preprocessor``) is used for the student
            when its own config sets none.
        init_cfg: MMEngine initialisation config.
    """

    def __init__(self,
                 student: dict,
                 teacher: Optional[dict] = None,
                 teacher_ckpt: Optional[str] = None,
                 allow_random_teacher: bool = False,
                 distill_points: Optional[Dict[str, dict]] = None,
                 teacher_forward: str = 'auto',
                 student_loss_weight: float = 1.0,
                 predict_with: str = 'student',
                 nonfinite: str = 'raise',
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if teacher_forward not in _TEACHER_FORWARDS:
            raise ValueError(f'teacher_forward must be one of '
                             f'{_TEACHER_FORWARDS}, got {teacher_forward!r}')
        if predict_with not in ('student', 'teacher'):
            raise ValueError(f"predict_with must be 'student' or 'teacher', "
                             f'got {predict_with!r}')
        if nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f'nonfinite must be one of {NONFINITE_POLICIES}'
                             f', got {nonfinite!r}')
        self.nonfinite = nonfinite
        self._skip_update = False
        self.skipped_steps = 0
        default_dp = data_preprocessor if isinstance(
            data_preprocessor, dict) else None
        self.student = build_task_model(student, 'student', default_dp)
        self.data_preprocessor = self.student.data_preprocessor
        self.student_loss_weight = check_nonnegative_weight(
            student_loss_weight, 'student_loss_weight', 'OfflineDistiller')
        self.teacher_ckpt = teacher_ckpt
        self._teacher_tensors: Dict[str, List[Tensor]] = {}

        self.points = [
            DistillPoint.from_cfg(name, cfg)
            for name, cfg in (distill_points or {}).items()
        ]
        needs_teacher = any(p.teacher is not None for p in self.points)
        if teacher is None:
            if needs_teacher:
                raise ValueError(
                    'distill points read teacher modules but no `teacher` '
                    'model is configured')
            self.teacher = None
        else:
            self.teacher = build_task_model(teacher, 'teacher', default_dp)
            load_teacher(self.teacher, teacher_ckpt, allow_random_teacher)
        self.predict_with = predict_with
        if predict_with == 'teacher' and self.teacher is None:
            raise ValueError("predict_with='teacher' needs a teacher")

        self.connectors = nn.ModuleDict()
        self.distill_losses = nn.ModuleDict()
        for point in self.points:
            if point.connector_cfg is not None:
                with about_point(point.name, 'connector'):
                    connector = build_mmkdflow_module(point.connector_cfg)
                if not isinstance(connector, BaseConnector):
                    raise TypeError(
                        f'distill point {point.name!r}: connector must be a '
                        f'mmkdflow BaseConnector, got '
                        f'{type(connector).__name__}')
                self.connectors[point.name] = connector
            if point.loss_cfg is not None:
                with about_point(point.name, 'loss'):
                    self.distill_losses[point.name] = build_mmkdflow_module(
                        point.loss_cfg)

        self.student_recorder = ModuleOutputRecorder(
            self.student,
            [p.student for p in self.points] +
            [p.replace_path for p in self.points if p.replace], 'student')
        self.teacher_recorder = None
        if self.teacher is not None:
            self.teacher_recorder = ModuleOutputRecorder(
                self.teacher,
                [p.teacher for p in self.points if p.teacher is not None],
                'teacher')
        self.teacher_forward = self._resolve_teacher_forward(teacher_forward)
        check_points(self.points, self.student_recorder.modules,
                     self.teacher_recorder.modules
                     if self.teacher_recorder is not None else {},
                     set(self.connectors))
        self._replaced: Dict[str, ConnectorOutput] = {}
        self._context = DistillContext()
        for point in self.points:
            if point.replace:
                self.student_recorder.set_transform(
                    point.replace_path, self._make_replacer(point))

    # ------------------------------------------------------------ building
    def _resolve_teacher_forward(self, mode: str) -> str:
        if mode != 'auto' or self.teacher is None:
            return mode
        inside_feat = all(
            p.teacher.split('.')[0] in ('backbone', 'neck')
            for p in self.points if p.teacher is not None)
        if inside_feat and hasattr(self.teacher, 'extract_feat'):
            return 'extract_feat'
        return 'tensor'

    def init_weights(self) -> None:
        """Fetch the remote ``Pretrained`` weights of the modules still to
        be initialised first (an unreachable or missing one is reported
        with the module that asks for it, see
        :func:`~.pretrained.fetch_pretrained`), then MMEngine's
        initialisation (the loaded teacher is marked initialised and left
        alone)."""
        fetch_pretrained(self)
        super().init_weights()

    # ------------------------------------------------------------- helpers
    def _make_replacer(self, point: DistillPoint):
        where = f"student '{point.student}'"

        def replace(output):
            if point.replaces_other_module:
                student = select(self.student_recorder.get(point.student),
                                 point.student_index, where)
                index = None
            else:
                student = select(output, point.student_index, where)
                index = point.student_index
            teacher = self._teacher_tensors.get(point.name) \
                if self._context.training else None
            if point.replaces_other_module:
                self._context.replaced_output = output
            try:
                result = self._run_connector(point, student, teacher)
            finally:
                self._context.replaced_output = None
            self._replaced[point.name] = result
            return put_back(output, index, result.student)

        return replace

    def _run_connector(self, point: DistillPoint, student: List[Tensor],
                       teacher: Optional[List[Tensor]]) -> ConnectorOutput:
        connector = self.connectors[point.name]
        result = connector(student, teacher, self._context)
        if not isinstance(result, ConnectorOutput) or \
                len(result.student) != len(student):
            raise TypeError(
                f'connector {type(connector).__name__} of point '
                f'{point.name!r} must return a ConnectorOutput with one '
                f'student tensor per input ({len(student)})')
        return result

    def _make_context(self, data_samples, training: bool) -> DistillContext:
        hub = MessageHub.get_current_instance()
        return DistillContext(
            data_samples=data_samples,
            epoch=int(hub.get_info('epoch', 0) or 0),
            iter=int(hub.get_info('iter', 0) or 0),
            max_epochs=hub.get_info('max_epochs'),
            max_iters=hub.get_info('max_iters'),
            training=training)

    @torch.no_grad()
    def _run_teacher(self, inputs: Tensor, data_samples) -> None:
        self._teacher_tensors = {}
        if self.teacher is None:
            return
        self.teacher.eval()
        with self.teacher_recorder.recording():
            if self.teacher_forward == 'extract_feat':
                self.teacher.extract_feat(inputs)
            else:
                self.teacher(inputs, data_samples, mode='tensor')
        for point in self.points:
            if point.teacher is not None:
                self._teacher_tensors[point.name] = select(
                    self.teacher_recorder.get(point.teacher),
                    point.teacher_index, f"teacher '{point.teacher}'")
        self.teacher_recorder.clear()

    # ------------------------------------------------------------- forward
    def forward(self, inputs: Tensor, data_samples=None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode not in ('predict', 'tensor'):
            raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', "
                             f'got {mode!r}')
        if self.predict_with == 'teacher':
            return self.teacher(inputs, data_samples, mode=mode)
        self._context = self._make_context(data_samples, training=False)
        self._teacher_tensors = {}
        try:
            with self.student_recorder.recording():
                return self.student(inputs, data_samples, mode=mode)
        finally:
            self._release()

    def loss(self, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        """Teacher forward, student losses, then one loss set per point."""
        self._context = self._make_context(data_samples, training=True)
        try:
            self._run_teacher(inputs, data_samples)
            with self.student_recorder.recording():
                student_losses = self.student.loss(inputs, data_samples)
            losses = {
                f'student.{k}': _scale(v, self.student_loss_weight)
                if 'loss' in k else v
                for k, v in student_losses.items()
            }
            for point in self.points:
                losses.update(self._point_losses(point))
            if self.nonfinite != 'off':
                self._guard_losses(losses)
            return losses
        finally:
            self._release()

    def _point_losses(self, point: DistillPoint) -> Dict[str, Tensor]:
        teacher = self._teacher_tensors.get(point.name)
        if point.replace:
            result = self._replaced[point.name]
        else:
            student = select(
                self.student_recorder.get(point.student),
                point.student_index, f"student '{point.student}'")
            if point.name in self.connectors:
                result = self._run_connector(point, student, teacher)
            else:
                result = ConnectorOutput(student=student)
        prefix = f'distill.{point.name}.'
        losses = {prefix + k: v for k, v in result.losses.items()}
        loss_fn = self.distill_losses[point.name] \
            if point.name in self.distill_losses else None
        if loss_fn is not None:
            targets = result.teacher if result.teacher is not None \
                else teacher
            total = 0.
            for level, (s, t) in enumerate(zip(result.student, targets)):
                if s.shape != t.shape:
                    raise ValueError(
                        f'distill point {point.name!r} (entry {level}): '
                        f"student tensor {tuple(s.shape)} from "
                        f"'{point.student}' does not match teacher tensor "
                        f"{tuple(t.shape)} from '{point.teacher}'; add a "
                        f'connector that maps the student to the teacher '
                        f'shape, or read matching modules')
                total = total + loss_fn(s, t, self._context)
            losses[prefix + 'loss'] = total
        return losses

    def _release(self) -> None:
        """Drop every reference to this step's tensors."""
        self.student_recorder.clear()
        self._replaced = {}
        self._teacher_tensors = {}
        self._context = DistillContext()

    def train(self, mode: bool = True) -> 'OfflineDistiller':
        """Switch the student and connectors; the teacher stays in eval."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def remove_hooks(self) -> None:
        """Detach all recording hooks from the student and the teacher."""
        self.student_recorder.remove()
        if self.teacher_recorder is not None:
            self.teacher_recorder.remove()

    def student_state_dict(self) -> Dict[str, Tensor]:
        """The student's weights alone, as the downstream package saves them."""
        return self.student.state_dict()


def _scale(value, factor: float):
    if factor == 1.0:
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(v * factor for v in value)
    return value * factor

