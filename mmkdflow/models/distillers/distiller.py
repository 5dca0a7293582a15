"""The distiller: a student, its distillation points and (optionally) a
frozen teacher, as one MMEngine ``BaseModel``: argument checks, teacher
loading, recorders and the three forward modes. Points and their
validation, the per-call losses, teacher loading, caching and inputs live
in their own modules beside it.
"""
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from torch import Tensor

from mmkdflow.compat import check_downstream_versions
from mmkdflow.engine.checkpoint.teacher_identity import (drop_teacher_hook,
                                                        restore_teacher,
                                                        state_dict_hash)
from mmkdflow.registry import MODELS
from ..connectors.base import BaseConnector
from ..core import DistillContext, DistillStep, check_nonnegative_weight
from ..recorders import ModuleOutputRecorder
from ..utils import build_mmkdflow_module, build_task_model
from .distill_point import DistillPoint, select
from .point_calls import point_losses, replacers
from .pretrained import fetch_pretrained
from .teacher import load_teacher
from .teacher_cache import TeacherOutputCache
from .teacher_inputs import TeacherInputs
from .validation import about_point, check_points

_TEACHER_FORWARDS = ('auto', 'extract_feat', 'tensor')


@MODELS.register_module()
class Distiller(BaseModel):
    """A trainable student with its distillation points, and a frozen
    teacher when there is one.

    One model serves three uses: offline distillation (a teacher), online
    distillation (OFM-KT: no teacher, the flow teaches the student) and the
    deployed student whose connectors stay in the inference path.

    In training (``mode='loss'``) the teacher runs first under ``no_grad``
    and its hooked modules are recorded; then the student computes its own
    losses while its hooked modules are recorded (and, for points with
    ``replace``, replaced by their connector's output, so it flows on into
    the student's head). Each distillation point then turns its (student,
    teacher) tensors into losses. Validation and test run the student alone
    (with its replacing connectors).

    Each call keeps its state (context, teacher tensors, replaced outputs)
    in one :class:`~mmkdflow.models.core.DistillStep` passed as an argument
    and dropped at the end of the call; the distiller itself holds none.
    Non-finite losses are caught by the optim wrapper
    (:class:`~mmkdflow.engine.NonFiniteGuardOptimWrapper`), not here.

    Args:
        student (dict): Student model dict, or ``dict(cfg_path='mmdet::...')``.
        teacher (dict, optional): Teacher model dict or ``dict(cfg_path=...)``.
            Defaults to None.
        teacher_ckpt (str, optional): Path or URL of the teacher's trained
            weights, loaded on CPU with safe loading and checked key by key.
            Defaults to None.
        allow_random_teacher (bool): Set to ``True`` to distill from a randomly
            initialised teacher on purpose (tests, timing). Without it a
            missing ``teacher_ckpt`` is an error. A random teacher stays in the
            training checkpoints (nothing could rebuild it). Defaults to False.
        allow_teacher_change (bool): A frozen teacher loaded from
            ``teacher_ckpt`` is left out of the training checkpoints, which
            keep its ``teacher_ckpt`` and a SHA-256 of its weights instead (see
            :mod:`mmkdflow.engine.checkpoint.teacher_identity`); loading such a
            checkpoint (``--resume``, ``load_from``) with a teacher of another
            hash is an error unless this is ``True`` (resume with a new teacher
            on purpose). A teacher that is not frozen stays in the checkpoints,
            as it changes during training. Defaults to False.
        distill_points (dict, optional): ``dict(name=dict(student=...,
            teacher=..., index=..., connector=..., loss=..., replace=...))``;
            see :class:`DistillPoint`. Defaults to None.
        teacher_forward (str): ``'extract_feat'`` runs only the teacher's
            backbone/neck, ``'tensor'`` its full tensor forward (for logits),
            ``'auto'`` picks ``extract_feat`` when every teacher path lies in
            the backbone or neck. Defaults to 'auto'.
        student_loss_weight (float): Factor (>= 0) on the student's own task
            losses; 0 leaves the student to the distillation losses alone.
            Defaults to 1.0.
        predict_with (str): ``'student'`` or ``'teacher'``: which
            model answers ``val_step``/``test_step``. Defaults to 'student'.
        teacher_cache (bool | dict): Keep the teacher's tensors per image after
            their first forward and skip the teacher for batches whose images
            are all cached (:class:`~.teacher_cache.TeacherOutputCache`;
            ``True`` or a dict of its arguments, e.g.
            ``dict(key='img_id', max_gb=8)``). Only for train pipelines without
            random transforms: ``SafeTrainingHook`` refuses it otherwise, and
            an image that comes back with another input raises. Defaults to
            False.
        data_preprocessor (dict | nn.Module, optional): The distiller
            preprocesses every batch with the student's data preprocessor; a
            dict given here (MMEngine's ``Runner`` passes the config's
            top-level ``data_preprocessor``) is used for the student when its
            own config sets none. A teacher whose own preprocessor normalises
            otherwise (mean, std, ``bgr_to_rgb``) gets the batch re-normalised
            its way (:class:`~.teacher_inputs.TeacherInputs`). Defaults to
            None.
        init_cfg (dict, optional): MMEngine initialisation config. Defaults to
            None.
    """

    def __init__(self,
                 student: dict,
                 teacher: Optional[dict] = None,
                 teacher_ckpt: Optional[str] = None,
                 allow_random_teacher: bool = False,
                 allow_teacher_change: bool = False,
                 distill_points: Optional[Dict[str, dict]] = None,
                 teacher_forward: str = 'auto',
                 student_loss_weight: float = 1.0,
                 predict_with: str = 'student',
                 teacher_cache: Union[bool, dict] = False,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if teacher_forward not in _TEACHER_FORWARDS:
            raise ValueError(f'teacher_forward must be one of '
                             f'{_TEACHER_FORWARDS}, got {teacher_forward!r}')
        if predict_with not in ('student', 'teacher'):
            raise ValueError(f"predict_with must be 'student' or 'teacher', "
                             f'got {predict_with!r}')
        default_dp = data_preprocessor if isinstance(
            data_preprocessor, dict) else None
        self.student = build_task_model(student, 'student', default_dp)
        self.data_preprocessor = self.student.data_preprocessor
        self.student_loss_weight = check_nonnegative_weight(
            student_loss_weight, 'student_loss_weight', 'Distiller')
        self.teacher_ckpt = teacher_ckpt
        self.allow_teacher_change = allow_teacher_change
        self.teacher_hash: Optional[str] = None
        self._runtime_checked = False  # SafeTrainingHook looked for
        #: ``True``: the student trains alone (no teacher forward, no
        #: distillation losses); set by ``StopDistillHook`` from the epoch.
        self.distill_stopped = False

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
            self.teacher_inputs = None
        else:
            self.teacher = build_task_model(teacher, 'teacher', default_dp)
            load_teacher(self.teacher, teacher_ckpt, allow_random_teacher)
            self.teacher_inputs = TeacherInputs.between(
                self.data_preprocessor, self.teacher.data_preprocessor)
            if teacher_ckpt is not None:
                self.teacher_hash = state_dict_hash(self.teacher.state_dict())
        # mmdet / mmseg / mmpretrain are imported by now if a model of
        # theirs was built: their range is checked here, not at import
        check_downstream_versions()
        self._register_state_dict_hook(drop_teacher_hook)
        self.predict_with = predict_with
        if predict_with == 'teacher' and self.teacher is None:
            raise ValueError("predict_with='teacher' needs a teacher")
        self.teacher_cache = _build_cache(teacher_cache, self.teacher)

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
                if point.student_index is not None:
                    with about_point(point.name, 'connector'):
                        connector.check_num_inputs(len(point.student_index))
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
                     set(self.connectors) | {
                         name for name, loss in self.distill_losses.items()
                         if getattr(loss, 'maps_channels', False)})

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

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Check a teacher-free checkpoint's teacher and fill the teacher
        in (:func:`~mmkdflow.engine.checkpoint.restore_teacher`), then load."""
        restore_teacher(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------- forward
    @torch.no_grad()
    def _run_teacher(self, inputs: Tensor, data_samples
                     ) -> Dict[str, List[Tensor]]:
        """The teacher tensors of every point that reads the teacher."""
        if self.teacher is None:
            return {}
        self.teacher.eval()
        if self.teacher_inputs is not None:
            inputs = self.teacher_inputs(inputs, data_samples)
        with self.teacher_recorder.recording() as record:
            if self.teacher_forward == 'extract_feat':
                self.teacher.extract_feat(inputs)
            else:
                self.teacher(inputs, data_samples, mode='tensor')
        return {
            point.name: select(record.get(point.teacher),
                               point.teacher_index,
                               f"teacher '{point.teacher}'")
            for point in self.points if point.teacher is not None
        }

    def _teacher_tensors(self, inputs: Tensor, data_samples
                         ) -> Dict[str, List[Tensor]]:
        """The teacher tensors of a training batch: from the teacher cache
        when every image of the batch is in it, else from the teacher
        (then cached)."""
        if self.teacher_cache is None:
            return self._run_teacher(inputs, data_samples)
        return self.teacher_cache.serve(
            inputs, data_samples,
            lambda: self._run_teacher(inputs, data_samples))

    def forward(self, inputs: Tensor, data_samples=None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode not in ('predict', 'tensor'):
            raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', "
                             f'got {mode!r}')
        if self.predict_with == 'teacher':
            if self.teacher_inputs is not None:
                inputs = self.teacher_inputs(inputs, data_samples)
            return self.teacher(inputs, data_samples, mode=mode)
        step = DistillStep(DistillContext.current(data_samples,
                                                  training=False))
        with self.student_recorder.recording(
                replacers(self.points, self.connectors, step)):
            return self.student(inputs, data_samples, mode=mode)

    def train_step(self, data, optim_wrapper) -> Dict[str, Tensor]:
        """MMEngine's training step; the first one warns when the config
        lacks ``mmkdflow.SafeTrainingHook``.

        Returns:
            dict[str, Tensor]: The log variables, as MMEngine's
            ``BaseModel.train_step`` returns.
        """
        if not self._runtime_checked:
            from mmengine.logging import MessageHub

            from mmkdflow.engine.hooks.safe_training_hook import \
                warn_without_safe_training
            warn_without_safe_training(MessageHub.get_current_instance())
            self._runtime_checked = True
        return super().train_step(data, optim_wrapper)

    def loss(self, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        """Teacher forward, student losses, then one loss set per point
        (the student's losses alone once ``distill_stopped``).

        Returns:
            dict[str, Tensor]: The student's losses and
            ``distill.<point>.<name>`` losses.
        """
        step = DistillStep(DistillContext.current(data_samples,
                                                  training=True))
        if not self.distill_stopped:
            step.teacher = self._teacher_tensors(inputs, data_samples)
        with self.student_recorder.recording(
                replacers(self.points, self.connectors, step)) as record:
            student_losses = self.student.loss(inputs, data_samples)
        losses = {
            f'student.{k}': _scale(v, self.student_loss_weight)
            if 'loss' in k else v
            for k, v in student_losses.items()
        }
        if self.distill_stopped:
            return losses
        for point in self.points:
            losses.update(point_losses(
                point, self.connectors[point.name]
                if point.name in self.connectors else None,
                self.distill_losses[point.name]
                if point.name in self.distill_losses else None,
                step, record))
        return losses

    def train(self, mode: bool = True) -> 'Distiller':
        """Switch the student and connectors; the teacher stays in eval.

        Returns:
            Distiller: The module itself.
        """
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def remove_hooks(self) -> None:
        """Detach all recording hooks from the student and the teacher."""
        self.student_recorder.remove()
        if self.teacher_recorder is not None:
            self.teacher_recorder.remove()


def _build_cache(option: Union[bool, dict], teacher: Optional[nn.Module]
                 ) -> Optional[TeacherOutputCache]:
    if option is False or option is None:
        return None
    if teacher is None:
        raise ValueError('teacher_cache keeps the teacher\'s tensors, but '
                         'this distiller has no teacher; remove '
                         'teacher_cache')
    if option is True:
        return TeacherOutputCache()
    if isinstance(option, dict):
        return TeacherOutputCache(**option)
    raise TypeError(f'teacher_cache must be True, False or a dict of '
                    f'TeacherOutputCache arguments, got {option!r}')


def _scale(value, factor: float):
    if factor == 1.0:
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(v * factor for v in value)
    return value * factor

