"""FM-KT: knowledge transfer via flow matching (Shao et al., 2024)."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from torch import Tensor

from mmkdflow.registry import MODELS
from ..flows import (FlowLogitHead, TimeEmbedding, VelocityField,
                     build_meta_encoder, build_schedule,
                     decoupling_permutation, euler_sample, own_logits,
                     permute_targets)
from ..flows.sampler import ANCHORS, FlowTrajectory, VelocityFn
from ..utils.context import DistillContext
from ..utils.model_builder import build_mmkdflow_module
from .base import BaseConnector, ConnectorOutput


@MODELS.register_module()
class FMKTConnector(BaseConnector):
    r"""FM-KT connector: a flow from the student to the teacher.

    For each selected student tensor :math:`Z` (e.g. each FPN level) the
    serial N-step Euler sampler (:func:`~mmkdflow.models.flows.euler_sample`)
    runs :math:`v_i = E(x + \text{emb}(t_i))`, :math:`\hat X_i` = teacher
    prediction (:math:`Z - v_i` for rectified flow), :math:`x \leftarrow x -
    v_i / N` for :math:`t_i = i/N`, i = N..1, all with gradients. The
    teacher is only a loss target, never an input of E. Per level k with
    weight :math:`w_k` (``level_weights``):

    * feature flow (default): ``loss_flow = w_k / N sum_i D(P(Xhat_i),
      X_T)`` with D = ``distance`` and P = ``teacher_proj`` (identity by
      default); the returned student tensor is :math:`\frac1N\sum_i \hat X_i`
      (for rectified flow also the Euler end point), which with
      ``replace=True`` replaces that level for the student's head, in
      training and inference alike (inference runs the same loop with
      ``num_steps_test`` steps; the released detection code instead feeds
      every eval step the unchanged Z, which we deliberately do not copy).
    * ``theta=True`` (FM-KT-Theta for features, **[ext]**): the raw Z is
      returned, so the deployed student is the vanilla one (at inference
      the flow does not even run), and ``loss_theta = w_k * theta_weight *
      D(Z, stopgrad(mean_i Xhat_i))`` distils the flow's refined feature
      back into the raw level, next to ``loss_flow`` which trains E.
    * ``head_mode=True`` (logit flow): :math:`o_i = fc(\text{pool}(\hat
      X_i))` with a ``Linear(C, num_classes)``
      (:class:`~mmkdflow.models.flows.FlowLogitHead`; ``head_pool=False``
      applies it per pixel, for the segmentation flow **[ext]**);
      ``loss_flow = w/N sum_i D(o_i, y_T)`` and ``loss_ce = w/N sum_i
      CE(o_i, y)`` (labels from the context); the returned tensor is
      :math:`\frac1N\sum_i o_i` (logits), which replaces the student's own
      classifier output when the point reads ``student='backbone'`` with
      ``replace='head.fc'`` (mmseg: ``student='decode_head.bottleneck'``,
      ``replace='decode_head.conv_seg'``). Configs then set the distiller's
      ``student_loss_weight=0`` (the released recipe has no CE or KD
      outside the flow). With ``online=True`` (OFM-KT, no teacher)
      ``loss_ce`` uses label smoothing 0.1 and ``loss_flow = w/N sum_i
      D(o_i, stopgrad(mean_j o_j))``.
    * ``theta=True`` with ``head_mode=True`` (FM-KT-Theta for logits): the
      student's own classifier output :math:`fc_0(Z)` (``ctx.replaced_output``,
      the original output of the replaced ``head.fc``) is returned
      unchanged, so the deployed student is the vanilla one and at
      inference the flow does not run. The flow is trained as above, and
      ``loss_theta = w * theta_weight * D(fc_0(Z), stopgrad(mean_i
      o_i))`` distils its ensemble into :math:`fc_0`. The other half of the
      paper's objective, ``w * CE(fc_0(Z), y)``, is the student's own loss:
      such configs keep ``student_loss_weight = w`` (1 by default).

    Pair decoupling (``dirac_ratio < 1``): ``round((1 - dirac_ratio) B)``
    samples get other drawn samples' teacher targets, one permutation for
    all levels, built with ``index_select``: the teacher tensors are never
    modified (the released code permutes them in place).

    EMA of the flow (detection recipes, decay 0.999): not kept here but by
    :class:`~mmkdflow.engine.hooks.ConnectorEMAHook` (``custom_hooks=[dict(
    type='mmkdflow.ConnectorEMAHook', decay=0.999)]``), which averages the
    distiller's connectors with MMEngine's ``ExponentialMovingAverage`` and
    evaluates with the average.

    Args:
        channels: Student channels C (of every selected tensor).
        meta_encoder: Short name (``'convnext'``, ``'conv'``, ``'resconv'``,
            ``'mlp'``, ``'transformer'``, ``'conv_det'``), registered name,
            ``dict(type=..., **kwargs)`` or a module (e.g. a test stub).
        schedule: ``'rectified'``, ``'vp'``, ``'ve'`` or ``dict(type=...,
            **kwargs)``.
        num_steps: N in training.
        num_steps_test: N at inference; ``None``: ``num_steps``.
        num_steps_choices: If set, N is drawn uniformly from it at each
            training call (e.g. ``(1, 2, 4, 8, 16)``).
        distance: Loss config D (a ``BaseDistillLoss``), applied per step.
        level_weights: Weight w per selected tensor (``None``: 1 each); a
            level of weight 0 gets no loss (and no flow if ``theta``).
        dirac_ratio: Fraction of the batch kept in one-to-one pairs.
        share_across_levels: One meta-encoder and time embedding for all
            levels; otherwise one per level (needs ``num_levels`` or
            ``level_weights``).
        num_levels: Number of selected tensors, when not shared.
        teacher_proj: For teacher channels != C: an int (teacher channels;
            a 1x1 conv) or ``dict(out_channels=..., with_bn=False)``, applied
            to each prediction for the loss only (the flow, its output and
            the student's head stay in the student's C channels).
        theta: FM-KT-Theta (features, or logits with ``head_mode``), see
            above.
        theta_weight: Extra factor on ``loss_theta``.
        head_mode: Logit flow, see above.
        num_classes: Classes K of the head (``head_mode``).
        head_pool: ``True``: pool before the head (image classification);
            ``False``: per-pixel head and per-pixel CE with the
            ``gt_sem_seg`` labels (segmentation, **[ext]**).
        ce_weight: Factor on ``loss_ce``.
        online: OFM-KT (``head_mode`` only).
        label_smoothing: Of ``loss_ce``; ``None``: 0.1 online, else 0.
        anchor: ``'start'`` (released behaviour) or ``'state'``, see
            :func:`~mmkdflow.models.flows.euler_sample`.
        time_embed: ``'linear'``, ``'mlp'`` or ``None`` (``'mlp'`` for the
            logit flow, ``'linear'`` otherwise).
        init_cfg: MMEngine initialisation config.
    """

    def __init__(self,
                 channels: int,
                 meta_encoder: Union[str, dict, nn.Module] = 'convnext',
                 schedule: Union[str, dict] = 'rectified',
                 num_steps: int = 4,
                 num_steps_test: Optional[int] = None,
                 num_steps_choices: Optional[Sequence[int]] = None,
                 distance: Optional[dict] = dict(
                     type='PKDLoss', loss_weight=1.0),
                 level_weights: Optional[Sequence[float]] = None,
                 dirac_ratio: float = 1.0,
                 share_across_levels: bool = True,
                 num_levels: Optional[int] = None,
                 teacher_proj: Optional[Union[int, dict]] = None,
                 theta: bool = False,
                 theta_weight: float = 1.0,
                 head_mode: bool = False,
                 num_classes: Optional[int] = None,
                 head_pool: bool = True,
                 ce_weight: float = 1.0,
                 online: bool = False,
                 label_smoothing: Optional[float] = None,
                 anchor: str = 'start',
                 time_embed: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        steps = [num_steps, num_steps_test or num_steps,
                 *(num_steps_choices or ())]
        if any(int(n) < 1 for n in steps):
            raise ValueError(f'FM-KT step counts must be >= 1, got {steps}')
        if head_mode and not num_classes:
            raise ValueError('head_mode=True needs num_classes')
        if online and not head_mode:
            raise ValueError('online (OFM-KT) needs head_mode=True')
        if head_mode and teacher_proj is not None:
            raise ValueError('teacher_proj does not apply to head_mode')
        if not 0. <= dirac_ratio <= 1. or anchor not in ANCHORS:
            raise ValueError(f'need dirac_ratio in [0, 1] and anchor in '
                             f'{ANCHORS}, got {dirac_ratio}, {anchor!r}')
        self.channels = channels
        self.schedule = build_schedule(schedule)
        self.num_steps = int(num_steps)
        self.num_steps_test = int(num_steps_test or num_steps)
        self.num_steps_choices = tuple(int(n) for n in num_steps_choices) \
            if num_steps_choices else None
        self.level_weights = None if level_weights is None else [
            float(w) for w in level_weights]
        self.dirac_ratio = float(dirac_ratio)
        self.theta, self.theta_weight = theta, float(theta_weight)
        self.head_mode, self.online = head_mode, online
        self.ce_weight = float(ce_weight)
        self.label_smoothing = (0.1 if online else 0.) \
            if label_smoothing is None else float(label_smoothing)
        self.anchor = anchor
        if share_across_levels:
            num_levels = 1
        else:
            num_levels = num_levels or (len(level_weights)
                                        if level_weights else None)
            if not num_levels:
                raise ValueError('share_across_levels=False needs num_levels '
                                 '(or level_weights)')
        self.shared = share_across_levels
        mode = time_embed or ('mlp' if head_mode else 'linear')
        self.fields = nn.ModuleList(
            VelocityField(build_meta_encoder(meta_encoder, channels),
                          TimeEmbedding(channels, mode))
            for _ in range(num_levels))
        self.projs = None
        if teacher_proj is not None:
            proj = teacher_proj if isinstance(teacher_proj, dict) else dict(
                out_channels=teacher_proj)
            self.projs = nn.ModuleList(
                _make_proj(channels, **proj) for _ in range(num_levels))
        self.logit_head = FlowLogitHead(channels, num_classes, head_pool) \
            if head_mode else None
        self.distance = build_mmkdflow_module(distance)

    # -------------------------------------------------------------- flow
    def flow(self, z: Tensor, level: int = 0,
             num_steps: Optional[int] = None,
             velocity: Optional[VelocityFn] = None) -> FlowTrajectory:
        """Run the sampler on one student tensor.

        Args:
            z: The student tensor (the start state).
            level: Picks the meta-encoder when not shared.
            num_steps: N (default ``num_steps_test``).
            velocity: The field's :meth:`VelocityField.trajectory` for N, to
                reuse its time embeddings across levels.
        """
        field = self.fields[0 if self.shared else level]
        num_steps = num_steps or self.num_steps_test
        if velocity is None:
            velocity = field.trajectory(num_steps, z.dim())
        if getattr(field.meta_encoder, 'channels_last', False) \
                and z.dim() == 4:
            # the Euler states, velocities and predictions all stay in the
            # meta-encoder's layout: no copy inside the loop
            z = z.contiguous(memory_format=torch.channels_last)
        return euler_sample(velocity, z, num_steps, self.schedule,
                            self.anchor)

    @property
    def identity_at_inference(self) -> bool:
        """Whether inference returns the student tensors unchanged
        (FM-KT-Theta): the deployed model is then the vanilla student and
        the export keeps no flow."""
        return self.theta

    def classify(self, x: Tensor) -> Tensor:
        """The logit flow's head (pooled or per-pixel ``Linear(C, K)``)."""
        return self.logit_head(x)

    def project(self, x: Tensor, level: int) -> Tensor:
        """Map a prediction to the teacher's channels (identity if no
        ``teacher_proj``)."""
        if self.projs is None:
            return x
        proj = self.projs[0 if self.shared else level]
        return proj(x[..., None, None]).flatten(1) if x.dim() == 2 \
            else proj(x)

    def _steps(self, training: bool) -> int:
        if not training:
            return self.num_steps_test
        if self.num_steps_choices:
            pick = torch.randint(len(self.num_steps_choices), ()).item()
            return self.num_steps_choices[pick]
        return self.num_steps

    # ----------------------------------------------------------- forward
    def forward(self, student: List[Tensor], teacher: Optional[List[Tensor]],
                ctx: DistillContext) -> ConnectorOutput:
        n = len(student)
        weights = self.level_weights or [1.] * n
        if len(weights) != n or (not self.shared and len(self.fields) != n):
            raise ValueError(
                f'FMKTConnector got {n} student tensors but level_weights '
                f'has {len(weights)} entries and there are '
                f'{len(self.fields)} meta-encoders')
        for z in student:
            if z.shape[1] != self.channels:
                raise ValueError(
                    f'FMKTConnector(channels={self.channels}) got a student '
                    f'tensor of shape {tuple(z.shape)}; set channels='
                    f'{z.shape[1]}')
        training = teacher is not None or (self.online and ctx.training)
        own = None
        if self.theta and self.head_mode:
            if n != 1:
                raise ValueError(
                    f'FM-KT-Theta on a logit flow takes one student tensor, '
                    f'got {n}; select one with student_index')
            own = own_logits(ctx)
            if not training:
                return ConnectorOutput(student=[own])  # vanilla fc0(Z)
        elif self.theta and not training:
            return ConnectorOutput(student=list(student))  # vanilla student
        if teacher is not None:
            if len(teacher) != n:
                raise ValueError(f'FMKTConnector got {n} student but '
                                 f'{len(teacher)} teacher tensors')
            if self.dirac_ratio < 1.:
                perm = decoupling_permutation(
                    student[0].shape[0], self.dirac_ratio, student[0].device)
                teacher = permute_targets(teacher, perm)
        num_steps = self._steps(training)
        shared_velocity = self.fields[0].trajectory(
            num_steps, student[0].dim()) if self.shared else None
        outputs, losses = [], {}
        for k, z in enumerate(student):
            w = weights[k]
            if self.theta and w == 0:
                outputs.append(z if own is None else own)
                continue
            traj = self.flow(z, k, num_steps, shared_velocity)
            preds = traj.predictions
            if self.head_mode:
                preds = [self.classify(p) for p in preds]
                out = sum(preds[1:], preds[0]) / num_steps
            else:
                # back to the default layout for the student's head (e.g.
                # mmcv's deformable convs refuse channels-last inputs)
                out = traj.mean.contiguous()
            if own is not None:
                own_logits(ctx, expected=out)  # shape check
                outputs.append(own)
            else:
                outputs.append(z if self.theta else out)
            if training and w != 0:
                target = teacher[k] if teacher is not None else None
                level_losses = self._level_losses(
                    z if own is None else own, preds, out, target, k, w,
                    ctx)
                for name, value in level_losses.items():
                    losses[name if n == 1 else f'{name}_l{k}'] = value
        return ConnectorOutput(student=outputs, losses=losses)

    def _level_losses(self, z: Tensor, preds: List[Tensor], out: Tensor,
                      target: Optional[Tensor], level: int, w: float,
                      ctx: DistillContext) -> Dict[str, Tensor]:
        step_w = w / len(preds)
        if self.head_mode:
            if target is not None and target.shape != out.shape:
                raise ValueError(
                    f'FMKTConnector: the flow gives logits of shape '
                    f'{tuple(out.shape)} but the teacher tensor has shape '
                    f'{tuple(target.shape)}; read teacher logits of the same '
                    f'size (num_classes, and resolution per pixel)')
            goal = out.detach() if self.online else target
            losses = dict(
                loss_flow=step_w * self.distance.forward_steps(
                    preds, goal, ctx),
                loss_ce=step_w * self.ce_weight * sum(
                    self.logit_head.label_loss(o, ctx, self.label_smoothing)
                    for o in preds))
            if self.theta:  # z is the student's own fc0(Z) here
                losses['loss_theta'] = w * self.theta_weight * \
                    self.distance(z, out.detach(), ctx)
            return losses
        preds = [self.project(p, level) for p in preds]
        if preds[0].shape[1] != target.shape[1]:
            raise ValueError(
                f'FMKTConnector: predictions have {preds[0].shape[1]} '
                f'channels but the teacher has {target.shape[1]}; set '
                f'teacher_proj={target.shape[1]}')
        losses = dict(
            loss_flow=step_w * self.distance.forward_steps(preds, target, ctx))
        if self.theta:
            losses['loss_theta'] = w * self.theta_weight * self.distance(
                z, out.detach(), ctx)
        return losses


def _make_proj(in_channels: int, out_channels: int,
               with_bn: bool = False) -> nn.Module:
    """1x1 conv (+ BatchNorm) from the student's to the teacher's channels."""
    conv = nn.Conv2d(in_channels, out_channels, 1, bias=not with_bn)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels)) if with_bn \
        else conv
