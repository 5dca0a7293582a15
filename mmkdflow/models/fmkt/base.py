"""What FM-KT's feature-flow and logit-flow connectors share, and the
registered name ``FMKTConnector`` that builds either."""
from abc import ABCMeta
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Type

import torch.nn as nn
from torch import Tensor

from mmkdflow.registry import MODELS
from ..connectors.base import BaseConnector, check_student_channels
from ..losses import build_distill_loss
from .flow import EulerFlow
from .pairing import PairDecoupling
from .sampler import FlowTrajectory
from .schedules import Schedule

#: Arguments that only the logit flow takes.
LOGIT_ONLY = ('num_classes', 'head_pool', 'ce_weight', 'online',
              'label_smoothing', 'class_weight', 'flow_weight')


class _ChooseFlow(ABCMeta):
    """Calling :class:`FMKTConnector` itself builds the subclass that
    ``head_mode`` names (see :meth:`FMKTConnector.choose`); calling a
    subclass builds that subclass."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is FMKTConnector:
            chosen, args, kwargs = FMKTConnector.choose(args, kwargs)
            return chosen(*args, **kwargs)
        return super().__call__(*args, **kwargs)


@MODELS.register_module()
class FMKTConnector(BaseConnector, metaclass=_ChooseFlow):
    """FM-KT connector: one :class:`~mmkdflow.models.fmkt.EulerFlow`
    (``self.flows``), a per-step distance and pair decoupling.

    The two subclasses decide what the predictions feed:
    :class:`~mmkdflow.models.fmkt.FMKTFeatureConnector` (a feature loss)
    and :class:`~mmkdflow.models.fmkt.FMKTLogitConnector` (a classifier and
    a logit loss). The teacher is only a loss target, never an input of the
    meta-encoder.

    ``FMKTConnector(channels, meta_encoder=None, *, head_mode=False,
    **kwargs)`` (also the registered name ``'FMKTConnector'``) builds the
    feature flow, or with ``head_mode=True`` the logit flow, from the
    chosen class's arguments (:meth:`choose`); configs may name the two
    classes directly instead.

    Args (of both subclasses):
        channels: Student channels C.
        distance: Loss config D (a ``BaseDistillLoss``), applied per step.
        levels, shared: The flow's levels (see :class:`EulerFlow`).
        dirac_ratio: Fraction of the batch kept in one-to-one pairs (pair
            decoupling, 1 = off).
        decoupling: ``'cycle'`` (ours) or ``'released'``, the draw of
            :class:`~mmkdflow.models.fmkt.PairDecoupling`.
        init_cfg: MMEngine initialisation config.
        **flow: :class:`EulerFlow`'s other arguments (``meta_encoder``,
            ``schedule``, ``num_steps``, ``num_steps_test``,
            ``num_steps_choices``, ``anchor``, ``time_embed``, ``init``,
            ``checkpoint``, ``compile``).
    """

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

    @staticmethod
    def choose(args: Tuple, kwargs: dict
               ) -> Tuple[Type['FMKTConnector'], Tuple, dict]:
        """The class and arguments ``FMKTConnector(channels,
        meta_encoder=None, *, head_mode=False, **kwargs)`` builds.

        ``head_mode=False`` (default): :class:`FMKTFeatureConnector`.
        ``head_mode=True``: :class:`FMKTLogitConnector`, where a one-entry
        ``level_weights=[w]`` is read as ``flow_weight=w`` and
        ``share_across_levels`` (one flow: nothing to share) is dropped.

        Raises:
            ValueError: For an argument the chosen class does not take.
        """
        from .feature_connector import FMKTFeatureConnector
        from .logit_connector import FMKTLogitConnector
        if len(args) > 2:
            raise TypeError('FMKTConnector takes channels and meta_encoder '
                            'by position, every other argument by name')
        kwargs = dict(kwargs)
        if len(args) == 2:
            kwargs['meta_encoder'] = args[1]
        if kwargs.get('meta_encoder', 0) is None:
            kwargs.pop('meta_encoder')  # the chosen class's default
        if not kwargs.pop('head_mode', False):
            wrong = [k for k in LOGIT_ONLY if k in kwargs]
            if wrong:
                raise ValueError(
                    f'FMKTConnector: {", ".join(wrong)} apply to the logit '
                    f"flow only; set head_mode=True (or "
                    f"type='FMKTLogitConnector')")
            return FMKTFeatureConnector, args[:1], kwargs
        if kwargs.pop('teacher_proj', None) is not None or \
                kwargs.pop('num_levels', None) not in (None, 1):
            raise ValueError('FMKTConnector(head_mode=True) has one flow on '
                             'one tensor and no teacher projection: remove '
                             'teacher_proj and num_levels')
        kwargs.pop('share_across_levels', None)
        level_weights = kwargs.pop('level_weights', None)
        if level_weights is not None:
            if len(level_weights) != 1 or 'flow_weight' in kwargs:
                raise ValueError(
                    f'FMKTConnector(head_mode=True) has one flow: give its '
                    f'weight as flow_weight=w (or level_weights=[w]), got '
                    f'level_weights={list(level_weights)}')
            kwargs['flow_weight'] = level_weights[0]
        return FMKTLogitConnector, args[:1], kwargs

    @classmethod
    def identity_at_inference_for(cls, cfg: Mapping) -> bool:
        """FM-KT-Theta (``theta=True``) returns the student's own tensors at
        inference and deploys the vanilla student; plain FM-KT and OFM-KT
        replace them with the flow's prediction (for either flow, so also
        for the ``FMKTConnector`` name whatever its ``head_mode``)."""
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
        """Whether ``level`` runs a flow (a level of weight 0 does not)."""
        return self.flows.has_flow(level)

    def field(self, level: int = 0) -> nn.Module:
        """The velocity field of ``level``."""
        return self.flows.field(level)

    def flow(self, z: Tensor, level: int = 0,
             num_steps: Optional[int] = None) -> FlowTrajectory:
        """Run the sampler on one student tensor (N default:
        ``num_steps_test``)."""
        return self.flows(z, level, num_steps)

    def check_channels(self, student: Sequence[Tensor]) -> None:
        """Every student tensor must have ``channels`` channels."""
        check_student_channels(student, self.channels, type(self).__name__)

    def decouple(self, teacher: List[Tensor]) -> List[Tensor]:
        """Pair decoupling of one step's targets (see
        :class:`~mmkdflow.models.fmkt.PairDecoupling`); never in place."""
        return self.decoupling(teacher)
