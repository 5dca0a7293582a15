"""What FM-KT's feature-flow and logit-flow connectors share."""
from typing import List, Mapping, Optional, Sequence, Union

import torch.nn as nn
from torch import Tensor

from ..flows import decoupling_permutation, permute_targets
from ..flows.euler_flow import EulerFlow
from ..flows.sampler import FlowTrajectory
from ..utils.model_builder import build_mmkdflow_module
from .base import BaseConnector, check_student_channels


class BaseFMKTConnector(BaseConnector):
    """FM-KT connector base: one :class:`~mmkdflow.models.flows.EulerFlow`
    (``self.flows``), a per-step distance and pair decoupling.

    Subclasses decide what the predictions feed (a feature loss, or a
    classifier and a logit loss). The teacher is only a loss target, never
    an input of the meta-encoder.

    Args:
        flows: The flow.
        distance: Loss config D (a ``BaseDistillLoss``), applied per step.
        dirac_ratio: Fraction of the batch kept in one-to-one pairs (pair
            decoupling, 1 = off).
        init_cfg: MMEngine initialisation config.
    """

    def __init__(self, flows: EulerFlow, distance: Optional[dict],
                 dirac_ratio: float = 1.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not 0. <= dirac_ratio <= 1.:
            raise ValueError(f'dirac_ratio must be in [0, 1] (1 keeps every '
                             f'pair), got {dirac_ratio}')
        self.flows = flows
        self.channels = flows.channels
        self.dirac_ratio = float(dirac_ratio)
        self.distance = build_mmkdflow_module(distance)

    @property
    def schedule(self):
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

    @property
    def identity_at_inference(self) -> bool:
        """Whether inference returns the student tensors unchanged
        (FM-KT-Theta): the deployed model is then the vanilla student and
        the export keeps no flow."""
        return False

    @classmethod
    def identity_at_inference_for(cls, cfg: Mapping) -> bool:
        """FM-KT-Theta (``theta=True``) returns the student's own tensors at
        inference and deploys the vanilla student; plain FM-KT and OFM-KT
        replace them with the flow's prediction."""
        return bool(cfg.get('theta', False))

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

    def decouple(self, teacher: List[Tensor],
                 batch_size: int) -> List[Tensor]:
        """Pair decoupling: ``round((1 - dirac_ratio) B)`` samples get other
        drawn samples' targets, one permutation for every tensor, never in
        place (the released code permutes the teacher in place)."""
        if self.dirac_ratio >= 1.:
            return teacher
        perm = decoupling_permutation(batch_size, self.dirac_ratio,
                                      teacher[0].device)
        return permute_targets(teacher, perm)


def flow_options(meta_encoder: Union[str, dict, nn.Module], schedule,
                 num_steps: int, num_steps_test: Optional[int],
                 num_steps_choices: Optional[Sequence[int]], anchor: str,
                 init: str, checkpoint: bool = False,
                 compile: Union[bool, dict] = False) -> dict:
    """The :class:`EulerFlow` arguments both connectors pass through."""
    return dict(meta_encoder=meta_encoder, schedule=schedule,
                num_steps=num_steps, num_steps_test=num_steps_test,
                num_steps_choices=num_steps_choices, anchor=anchor,
                init=init, checkpoint=checkpoint, compile=compile)
