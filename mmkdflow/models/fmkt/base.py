"""What FM-KT's feature-flow and logit-flow connectors share."""
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import torch.nn as nn
from torch import Tensor

from mmkdflow.registry import MODELS
from ..connectors.base import BaseConnector, check_student_channels
from ..losses import build_distill_loss
from .flow import EulerFlow
from .pairing import PairDecoupling
from .sampler import FlowTrajectory
from .schedules import Schedule


@MODELS.register_module()
class FMKTConnector(BaseConnector):
    """FM-KT connector: one :class:`~mmkdflow.models.fmkt.EulerFlow`
    (``self.flows``), a per-step distance and pair decoupling.

    An abstract base. The two subclasses decide what the predictions feed:
    :class:`~mmkdflow.models.fmkt.FMKTFeatureConnector` (a feature loss)
    and :class:`~mmkdflow.models.fmkt.FMKTLogitConnector` (a classifier and
    a logit loss). The teacher is only a loss target, never an input of the
    meta-encoder. The name is registered so that a config naming it gets
    the class to use instead.

    Args (of both subclasses):
        channels (int): Student channels C.
        distance (dict, optional): Loss config D (a ``BaseDistillLoss``),
            applied per step.
        levels (Sequence[int], optional): The flow's levels (see
            :class:`EulerFlow`).
        shared (bool): One flow for every level (see :class:`EulerFlow`).
        dirac_ratio (float): Fraction of the batch kept in one-to-one pairs
            (pair decoupling, 1 = off). Defaults to 1.0.
        decoupling (str): ``'cycle'`` (ours) or ``'released'``, the draw of
            :class:`~mmkdflow.models.fmkt.PairDecoupling`. Defaults to
            ``'cycle'``.
        init_cfg (dict, optional): MMEngine initialisation config.
            Defaults to None.
        **flow: :class:`EulerFlow`'s other arguments (``meta_encoder``,
            ``schedule``, ``num_steps``, ``num_steps_test``,
            ``num_steps_choices``, ``anchor``, ``time_embed``, ``init``,
            ``checkpoint``, ``compile``).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> 'FMKTConnector':
        if cls is FMKTConnector:
            name = 'FMKTLogitConnector' if kwargs.get('head_mode') \
                else 'FMKTFeatureConnector'
            extra = ' without head_mode' if 'head_mode' in kwargs else ''
            raise TypeError(
                f"FMKTConnector is the abstract base of FM-KT's connectors: "
                f"use type='{name}'{extra} (FMKTFeatureConnector for a "
                f"feature flow, FMKTLogitConnector for a logit flow)")
        return super().__new__(cls)

    def __init__(self, channels: int, *, distance: Optional[dict],
                 levels: Optional[Sequence[int]], shared: bool,
                 dirac_ratio: float = 1.0, decoupling: str = 'cycle',
                 init_cfg: Optional[dict] = None, **flow: Any) -> None:
        super().__init__(init_cfg=init_cfg)
        self.decoupling = PairDecoupling(dirac_ratio, decoupling)
        self.flows = EulerFlow(channels, levels=levels, shared=shared,
                               **flow)
        self.channels = self.flows.channels
        self.distance = build_distill_loss(distance, type(self).__name__,
                                           'distance')

    @classmethod
    def identity_at_inference_for(cls, cfg: Mapping) -> bool:
        """FM-KT-Theta (``theta=True``) returns the student's own tensors at
        inference and deploys the vanilla student; plain FM-KT and OFM-KT
        replace them with the flow's prediction.

        Returns:
            bool: Whether the point returns the student's own tensors at
            inference.
        """
        return bool(cfg.get('theta', False))

    @property
    def schedule(self) -> Schedule:
        """The flow's interpolant schedule."""
        return self.flows.schedule

    @property
    def num_steps(self) -> int:
        """N in training."""
        return self.flows.num_steps

    @property
    def num_steps_test(self) -> int:
        """N at inference."""
        return self.flows.num_steps_test

    def has_flow(self, level: int = 0) -> bool:
        """Whether ``level`` runs a flow (a level of weight 0 does not).

        Returns:
            bool: Whether ``level`` runs a flow.
        """
        return self.flows.has_flow(level)

    def field(self, level: int = 0) -> nn.Module:
        """The velocity field of ``level``.

        Returns:
            nn.Module: The velocity field.
        """
        return self.flows.field(level)

    def flow(self, z: Tensor, level: int = 0,
             num_steps: Optional[int] = None) -> FlowTrajectory:
        """Run the sampler on one student tensor (N default:
        ``num_steps_test``).

        Returns:
            FlowTrajectory: The N predictions, their mean and the states.
        """
        return self.flows(z, level, num_steps)

    def refined_student(self, student: List[Tensor],
                        level: int) -> Tuple[Tensor, str]:
        """``mean_i Xhat_i`` of the Euler sampler with ``num_steps_test``
        steps (also for FM-KT-Theta, whose deployed output is the raw
        student); a level of weight 0 has no flow: the student.

        Returns:
            tuple[Tensor, str]: The refined tensor and a short description.
        """
        if not self.has_flow(level):
            return student[level], 'student (no flow on this level)'
        n = self.num_steps_test
        return (self.flow(student[level], level, n).mean,
                f'FM-KT mean prediction (N={n})')

    def set_speed_options(self, checkpoint: bool = False,
                          compile: bool = False) -> int:
        """Per-step activation checkpointing and :func:`torch.compile` of
        every velocity field.

        Returns:
            int: The number of velocity fields changed.
        """
        from .velocity import VelocityField
        fields = [m for m in self.modules() if isinstance(m, VelocityField)]
        for field in fields:
            field.checkpoint, field.compile = checkpoint, compile
        return len(fields)

    def check_channels(self, student: Sequence[Tensor]) -> None:
        """Every student tensor must have ``channels`` channels."""
        check_student_channels(student, self.channels, type(self).__name__)

    def decouple(self, teacher: List[Tensor]) -> List[Tensor]:
        """Pair decoupling of one step's targets (see
        :class:`~mmkdflow.models.fmkt.PairDecoupling`); never in place.

        Returns:
            list[Tensor]: The decoupled targets, new tensors.
        """
        return self.decoupling(teacher)
