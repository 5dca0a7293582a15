"""The protocol shared by every distillation loss of mmkdflow."""
import math
from abc import abstractmethod
from typing import Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmkdflow.models.core import DistillContext
from mmkdflow.models.utils.precision import fp32_region  # noqa: F401


def logits_to_rows(logits: Tensor) -> Tensor:
    """View class scores as rows of a matrix, one row per prediction.

    ``(B, K)`` stays as is; dense logits ``(B, K, *spatial)`` become
    ``(B * prod(spatial), K)``: one row per pixel.
    """
    if logits.dim() < 2:
        raise ValueError(
            f'expected logits of shape (B, K) or (B, K, H, W), got '
            f'{tuple(logits.shape)}')
    if logits.dim() == 2:
        return logits
    return logits.movedim(1, -1).reshape(-1, logits.shape[1])


def positive(name: str, value: float) -> float:
    """``float(value)`` when it is > 0; else a ``ValueError`` naming
    ``name`` (NaN is refused too)."""
    if not value > 0:
        raise ValueError(f'{name} must be > 0, got {value}')
    return float(value)


def nonnegative(name: str, value: float) -> float:
    """``float(value)`` when it is >= 0; else a ``ValueError`` naming
    ``name`` (NaN is refused too)."""
    if not value >= 0:
        raise ValueError(f'{name} must be >= 0, got {value}')
    return float(value)


def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    """Reduce an element-wise loss: ``'mean'``, ``'sum'`` or ``'none'``."""
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    return loss


class BaseDistillLoss(BaseModule):
    """Base class of the distillation losses.

    A loss compares a student tensor with a teacher tensor of the same shape.
    The teacher is always a target: it is detached, so no gradient ever
    reaches it. Both tensors are cast to float32 and the loss is computed with
    autocast turned off, so the result is a float32 tensor whatever the input
    precision.

    Subclasses implement :meth:`compute_loss` (the unweighted loss, already
    reduced as ``self.reduction`` asks) and may narrow
    ``allowed_reductions``.

    Args:
        loss_weight: Factor (>= 0) the loss is multiplied by.
        reduction: How the loss is reduced; one of ``allowed_reductions``.
        init_cfg: Initialisation config of :class:`BaseModule`.

    Raises:
        ValueError: If ``reduction`` is not one of ``allowed_reductions``,
            or ``loss_weight`` is negative, infinite or NaN.
    """

    #: Whether :meth:`forward` needs a context with ground-truth labels.
    requires_labels: bool = False
    #: The reductions the loss accepts.
    allowed_reductions: Tuple[str, ...] = ('mean', 'sum', 'none')

    def __init__(self,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if reduction not in self.allowed_reductions:
            raise ValueError(
                f'{type(self).__name__}: reduction must be one of '
                f'{self.allowed_reductions}, got {reduction!r}')
        self.loss_weight = float(loss_weight)
        if not math.isfinite(self.loss_weight) or self.loss_weight < 0:
            raise ValueError(
                f'{type(self).__name__}: loss_weight must be a finite number '
                f'>= 0, got {loss_weight!r}: a negative weight maximises the '
                f'distance to the teacher instead of minimising it. Use a '
                f'weight >= 0 (0 switches the loss off)')
        self.reduction = reduction

    def forward(self,
                student: Tensor,
                teacher: Tensor,
                ctx: Optional[DistillContext] = None) -> Tensor:
        """Compute ``loss_weight * loss(student, teacher)``.

        Args:
            student: Student tensor; gradients flow back into it.
            teacher: Teacher tensor of the same shape; used as a target only
                (detached here).
            ctx: Step context; needed only when ``requires_labels`` is True.

        Returns:
            A scalar, or an unreduced tensor when ``reduction='none'``.

        Raises:
            ValueError: If the shapes do not match.
        """
        return self.forward_steps([student], teacher, ctx)

    def forward_steps(self,
                      students: Sequence[Tensor],
                      teacher: Tensor,
                      ctx: Optional[DistillContext] = None) -> Tensor:
        """``sum_i forward(students[i], teacher)`` for several student tensors
        of one target (e.g. the N predictions of an FM-KT trajectory), with
        the teacher's :meth:`prepare_target` computed once.

        Args:
            students: Student tensors of equal shapes.
            teacher: The one teacher tensor.
            ctx: Step context.

        Returns:
            The sum of the weighted losses.
        """
        if not students:
            raise ValueError(f'{type(self).__name__}.forward_steps needs at '
                             f'least one student tensor')
        teacher = teacher.detach()
        aligned = [self.align(s, teacher) for s in students]
        for student in aligned:
            self.check_shapes(student, teacher)
        with fp32_region(teacher.device):
            target = self.prepare_target(teacher.float())
            loss = sum(self.compute_loss(s.float(), target, ctx)
                       for s in aligned)
        return self.loss_weight * loss

    def prepare_target(self, teacher: Tensor) -> Tensor:
        """What :meth:`compute_loss` receives as its teacher, made from the
        detached float32 teacher once per teacher (default: the teacher).

        A loss that transforms its target (e.g. normalises it) does so here,
        so that a trajectory of N students pays for it once.
        """
        return teacher

    def align(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Hook to adapt the student to the teacher before the shape check
        (default: unchanged). The teacher itself is never adapted: one
        prepared target serves every student of :meth:`forward_steps`."""
        return student

    def check_shapes(self, student: Tensor, teacher: Tensor) -> None:
        """Raise a ValueError naming both shapes when they differ."""
        if student.shape == teacher.shape:
            return
        s_shape, t_shape = tuple(student.shape), tuple(teacher.shape)
        if len(s_shape) > 1 and len(t_shape) > 1 and s_shape[1] != t_shape[1]:
            hint = ('add a connector (e.g. ConvAdapter) to map the student '
                    "to the teacher's channels")
        else:
            hint = ('add a connector (e.g. ConvAdapter) or resize one side '
                    "so that the student matches the teacher's shape")
        raise ValueError(f'{type(self).__name__}: student {s_shape} vs '
                         f'teacher {t_shape}: {hint}')

    @abstractmethod
    def compute_loss(self, student: Tensor, teacher: Tensor,
                     ctx: Optional[DistillContext]) -> Tensor:
        """The unweighted loss on float32 inputs of equal shapes (``teacher``
        as returned by :meth:`prepare_target`)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f'loss_weight={self.loss_weight}, reduction={self.reduction!r}'
