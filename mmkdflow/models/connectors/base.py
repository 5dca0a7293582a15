"""The connector protocol shared by every distillation method."""
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mmengine.model import BaseModule
from torch import Tensor

from ..core import DistillContext


@dataclass
class ConnectorOutput:
    """What a connector hands back to the distiller.

    Attributes:
        student (list[Tensor]): The transformed student tensors, one per
            selected entry of the recorded output (e.g. one per FPN level).
            When the distillation point has ``replace=True`` these tensors take
            the place of the student's recorded output, so they flow on into
            the student's own head.
        teacher (list[Tensor], optional): The loss targets, when the connector
            changes them (e.g. a latent of the teacher feature); ``None`` keeps
            the recorded teacher tensors. Defaults to None.
        losses (dict): Losses the connector computes itself (already weighted),
            logged as ``distill.<point>.<name>``. Defaults to an empty dict.
    """

    student: List[Tensor]
    teacher: Optional[List[Tensor]] = None
    losses: Dict[str, Tensor] = field(default_factory=dict)


class IdentityAtInference:
    """Mixin of the connectors that return the student tensors unchanged
    at inference whatever their config (the export then keeps none of
    them)."""

    @classmethod
    def identity_at_inference_for(cls, cfg: Mapping) -> bool:
        """Always.

        Returns:
            bool: ``True``.
        """
        return True


def check_student_channels(student: Sequence[Tensor], channels: int,
                           owner: str, setting: str = 'channels') -> None:
    """Every student tensor must have ``channels`` channels: dim 1 of
    ``(B, C)`` vectors and ``(B, C, H, W)`` maps, the last dim of
    ``(B, N, C)`` transformer tokens.

    Raises:
        ValueError: Naming the connector (``owner``), the tensor's shape
            and the ``setting`` value that would fit it.
    """
    for x in student:
        found = x.shape[-1] if x.dim() == 3 else x.shape[1]
        if found != channels:
            raise ValueError(
                f'{owner} expects {channels} student channels but got a '
                f'tensor of shape {tuple(x.shape)}; set '
                f'{setting}={found}')


class BaseConnector(BaseModule, metaclass=ABCMeta):
    """Base class of connectors.

    A connector receives the student tensors and, in training, the teacher
    tensors of one distillation point as lists (one entry per selected
    index, e.g. per FPN level), so a method can share or batch one module
    across levels. At inference (validation, test, export) the teacher list
    is ``None``; a connector used with ``replace=True`` must then still
    return the student tensors.

    A point that replaces a *later* student module (``replace='head.fc'``
    while reading ``'backbone'``) calls ``forward(student, teacher, ctx,
    replaced=<that module's own output>)``; every other point calls
    ``forward(student, teacher, ctx)``.

    Each class declares, through :meth:`identity_at_inference_for`,
    whether it returns the student tensors unchanged at inference, so the
    export decides which points the deployed model keeps from the config
    alone, without building the connector. A built connector answers with
    its class: ``type(connector).identity_at_inference_for(cfg)``.

    A connector built for a fixed number of tensors (one module set per
    FPN level, one weight per level) says so in :meth:`check_num_inputs`,
    which the distiller calls at build time with the number of indices its
    point selects, and which the connector calls again in ``forward`` when
    the point selects the whole output.
    """

    @classmethod
    def identity_at_inference_for(cls, cfg: Mapping) -> bool:
        """Whether a connector of this class built from ``cfg`` returns the
        student tensors unchanged at inference (then a ``replace`` point
        with it deploys as the vanilla student).

        Args:
            cfg (Mapping): The connector's config (``type`` and its arguments).

        Returns:
            ``False`` here: a connector transforms the student tensors
            unless its class says otherwise.
        """
        return False

    def refined_student(self, student: List[Tensor],
                        level: int) -> Tuple[Tensor, str]:
        """The connector's refined version of ``student[level]`` at
        inference, for tools that show or measure it.

        Args:
            student (list[Tensor]): The point's student tensors.
            level (int): The entry to refine.

        Returns:
            tuple[Tensor, str]: The refined tensor and a short description.
            Here: the connector's output with no teacher.
        """
        out = self(student, None, DistillContext(training=False))
        return out.student[level], f'{type(self).__name__} output'

    def set_speed_options(self, checkpoint: bool = False,
                          compile: bool = False) -> int:
        """Turn on the connector's speed and memory options, for the
        benchmark.

        Args:
            checkpoint (bool): Activation checkpointing where the connector
                has it. Defaults to False.
            compile (bool): :func:`torch.compile` where the connector has
                it. Defaults to False.

        Returns:
            int: How many modules took an option (0 here: none).
        """
        return 0

    def check_num_inputs(self, num_inputs: int) -> None:
        """Refuse a number of student tensors the connector was not built
        for (default: any number works).

        Raises:
            ValueError: Naming the setting that fixes the number.
        """

    @abstractmethod
    def forward(self, student: List[Tensor], teacher: Optional[List[Tensor]],
                ctx: DistillContext, replaced: Any = None) -> ConnectorOutput:
        """Transform one point's tensors and compute the connector's losses.

        Args:
            student (list[Tensor]): Student tensors, one per selected index.
            teacher (list[Tensor], optional): Teacher tensors in the same
                order, or ``None`` at inference.
            ctx (DistillContext): The step's context (labels, epoch,
                iteration).
            replaced (Any, optional): The replaced later module's own output
                (e.g. the student's classifier logits, which FM-KT-Theta
                distils into), or ``None`` when the point replaces the module
                it reads or nothing. Defaults to None.
        """
