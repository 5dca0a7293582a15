"""The protocol shared by every distillation loss of mmkdflow, and the one
function that weights and reduces their element-wise values."""
from abc import abstractmethod
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmkdflow.models.core import DistillContext, check_nonnegative_weight
from mmkdflow.models.utils import build_mmkdflow_module, fp32_region

AvgFactor = Optional[Union[float, Tensor]]


def weight_reduce_loss(loss: Tensor, weight: Optional[Tensor] = None,
                       reduction: str = 'mean',
                       avg_factor: AvgFactor = None) -> Tensor:
    """Weight and reduce an element-wise loss, as mmdet's function of the
    same name does.

    Args:
        loss (Tensor): The element-wise loss (one value per element, row, map
            ...).
        weight (Tensor, optional): Multiplies ``loss`` first; broadcast to its
            shape. Defaults to None.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``. Defaults to
            'mean'.
        avg_factor (float | Tensor, optional): With ``'mean'``: divide the sum
            by it (plus the float32 epsilon) instead of the number of elements;
            not allowed with ``'sum'``. Defaults to None.

    Returns:
        Tensor: The reduced loss (a scalar), or the weighted element-wise loss
        with ``'none'``.

    Raises:
        ValueError: For ``avg_factor`` with ``reduction='sum'``, or an
            unknown reduction.
    """
    if weight is not None:
        loss = loss * weight
    if reduction == 'none':
        return loss
    if reduction == 'sum':
        if avg_factor is not None:
            raise ValueError("avg_factor can not be used with reduction='sum'")
        return loss.sum()
    if reduction != 'mean':
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got "
                         f'{reduction!r}')
    if avg_factor is None:
        return loss.mean()
    return loss.sum() / (avg_factor + torch.finfo(torch.float32).eps)


@dataclass(frozen=True)
class Reduction:
    """One call's :func:`weight_reduce_loss` settings; ``reduce(loss)``
    applies them (see :meth:`BaseDistillLoss.reduced_loss`)."""

    reduction: str = 'mean'
    weight: Optional[Tensor] = None
    avg_factor: AvgFactor = None

    def __call__(self, loss: Tensor) -> Tensor:
        return weight_reduce_loss(loss, self.weight, self.reduction,
                                  self.avg_factor)

    def unweighted(self, loss: Tensor) -> Tensor:
        """The same reduction without ``weight`` and ``avg_factor`` (for a
        term of another shape, e.g. an attention-imitation term).

        Returns:
            Tensor: The reduced term.
        """
        return weight_reduce_loss(loss, reduction=self.reduction)


def logits_to_rows(logits: Tensor) -> Tensor:
    """View class scores as rows of a matrix, one row per prediction.

    ``(B, K)`` stays as is; dense logits ``(B, K, *spatial)`` become
    ``(B * prod(spatial), K)``: one row per pixel.

    Returns:
        Tensor: The ``(N, K)`` rows.
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
    ``name`` (NaN is refused too).

    Returns:
        float: ``value`` as a float.
    """
    if not value > 0:
        raise ValueError(f'{name} must be > 0, got {value}')
    return float(value)


def nonnegative(name: str, value: float) -> float:
    """``float(value)`` when it is >= 0; else a ``ValueError`` naming
    ``name`` (NaN is refused too).

    Returns:
        float: ``value`` as a float.
    """
    if not value >= 0:
        raise ValueError(f'{name} must be >= 0, got {value}')
    return float(value)


def build_distill_loss(cfg: Optional[dict], where: str,
                       setting: str) -> 'BaseDistillLoss':
    """Build a loss config that must give an mmkdflow distillation loss
    (connectors call it with ``student, teacher, ctx``).

    Returns:
        BaseDistillLoss: The built loss.

    Raises:
        ValueError: Naming ``where`` and ``setting`` for anything else.
    """
    loss = build_mmkdflow_module(cfg)
    if not isinstance(loss, BaseDistillLoss):
        raise ValueError(
            f'{where}: {setting} must be an mmkdflow distillation loss '
            f"(e.g. dict(type='MSELoss')), got {type(loss).__name__}")
    return loss


class BaseDistillLoss(BaseModule):
    """Base class of the distillation losses.

    A loss compares a student tensor with a teacher tensor of the same shape.
    The teacher is always a target: it is detached, so no gradient ever
    reaches it. Both tensors are cast to float32 and the loss is computed with
    autocast turned off, so the result is a float32 tensor whatever the input
    precision.

    Subclasses implement :meth:`compute_loss` (the element-wise loss, before
    any reduction), which :meth:`reduced_loss` weights and reduces with
    :func:`weight_reduce_loss`, and may narrow ``allowed_reductions``.
    ``'batchmean'`` (allowed by the losses on class distributions, KD and
    DKD) is the reduction of torch's
    ``F.kl_div(..., reduction='batchmean')``: the divergence summed over
    the classes of each row, then averaged over the rows. Those losses
    compute one value per row already, so it reduces like ``'mean'``.

    Args:
        loss_weight (float): Factor (>= 0) the loss is multiplied by. Defaults
            to 1.0.
        reduction (str): How the loss is reduced; one of
            ``allowed_reductions``. Defaults to 'mean'.
        init_cfg (dict, optional): Initialisation config of
            :class:`BaseModule`. Defaults to None.

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
        self.reduction = self.check_reduction(reduction)
        self.loss_weight = check_nonnegative_weight(
            loss_weight, 'loss_weight', type(self).__name__)

    def check_reduction(self, reduction: str) -> str:
        """``reduction`` if the loss allows it, else a ``ValueError``.

        Returns:
            str: ``reduction`` unchanged.
        """
        if reduction not in self.allowed_reductions:
            raise ValueError(
                f'{type(self).__name__}: reduction must be one of '
                f'{self.allowed_reductions}, got {reduction!r}')
        return reduction

    def forward(self,
                student: Tensor,
                teacher: Tensor,
                ctx: Optional[DistillContext] = None,
                weight: Optional[Tensor] = None,
                avg_factor: AvgFactor = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute ``loss_weight * loss(student, teacher)``.

        Args:
            student (Tensor): Student tensor; gradients flow back into it.
            teacher (Tensor): Teacher tensor of the same shape; used as a
                target only (detached here).
            ctx (DistillContext, optional): Step context; needed when
                ``requires_labels`` is True. Defaults to None.
            weight (Tensor, optional): Element-wise weight of the unreduced
                loss (its shape is given in each loss's docstring). Defaults to
                None.
            avg_factor (float | Tensor, optional): Divisor of the ``'mean'``
                reduction. Defaults to None.
            reduction_override (str, optional): A reduction for this call
                instead of ``reduction``. Defaults to None.

        Returns:
            A scalar, or an unreduced tensor with ``'none'``.

        Raises:
            ValueError: If the shapes do not match, or the labels a loss
                needs are missing.
        """
        return self.forward_steps([student], teacher, ctx, weight,
                                  avg_factor, reduction_override)

    def forward_steps(self,
                      students: Sequence[Tensor],
                      teacher: Tensor,
                      ctx: Optional[DistillContext] = None,
                      weight: Optional[Tensor] = None,
                      avg_factor: AvgFactor = None,
                      reduction_override: Optional[str] = None) -> Tensor:
        """``sum_i forward(students[i], teacher)`` for several student tensors
        of one target (e.g. the N predictions of an FM-KT trajectory), with
        the teacher's :meth:`prepare_target` computed once.

        Args:
            students (Sequence[Tensor]): Student tensors of equal shapes.
            teacher (Tensor): The one teacher tensor.
            ctx (DistillContext, optional): Step context. Defaults to None.
            weight (Tensor, optional): As in :meth:`forward`, for every
                student. Defaults to None.
            avg_factor (float | Tensor, optional): As in :meth:`forward`, for
                every student. Defaults to None.
            reduction_override (str, optional): As in :meth:`forward`, for
                every student. Defaults to None.

        Returns:
            The sum of the weighted losses.
        """
        if not students:
            raise ValueError(f'{type(self).__name__}.forward_steps needs at '
                             f'least one student tensor')
        if self.requires_labels and ctx is None:
            raise ValueError(
                f'{type(self).__name__} needs ground-truth labels: pass a '
                f'DistillContext with data samples carrying gt_label')
        reduction = self.reduction if reduction_override is None \
            else self.check_reduction(reduction_override)
        reduce = Reduction('mean' if reduction == 'batchmean' else reduction,
                           weight, avg_factor)
        teacher = teacher.detach()
        aligned = [self.align(s, teacher) for s in students]
        for student in aligned:
            self.check_shapes(student, teacher)
        with fp32_region(teacher.device):
            target = self.prepare_target(teacher.float())
            loss = sum(self.reduced_loss(s.float(), target, ctx, reduce)
                       for s in aligned)
        return self.loss_weight * loss

    def prepare_target(self, teacher: Tensor) -> Tensor:
        """What :meth:`compute_loss` receives as its teacher, made from the
        detached float32 teacher once per teacher (default: the teacher).

        A loss that transforms its target (e.g. normalises it) does so here,
        so that a trajectory of N students pays for it once.

        Returns:
            Tensor: The target.
        """
        return teacher

    def align(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Hook to adapt the student to the teacher before the shape check
        (default: unchanged). The teacher itself is never adapted: one
        prepared target serves every student of :meth:`forward_steps`.

        Returns:
            Tensor: The adapted student.
        """
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
        """The element-wise loss (per element, row or map, as each loss
        documents) on float32 inputs of equal shapes, ``teacher`` as
        returned by :meth:`prepare_target`; not yet weighted or reduced."""
        raise NotImplementedError

    def reduced_loss(self, student: Tensor, teacher: Tensor,
                     ctx: Optional[DistillContext],
                     reduce: Reduction) -> Tensor:
        """:meth:`compute_loss` weighted and reduced by ``reduce``. A loss
        made of terms of different shapes overrides this.

        Returns:
            Tensor: The weighted, reduced loss.
        """
        return reduce(self.compute_loss(student, teacher, ctx))

    def extra_repr(self) -> str:
        return f'loss_weight={self.loss_weight}, reduction={self.reduction!r}'
