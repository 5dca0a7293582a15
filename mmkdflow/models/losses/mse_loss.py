"""Plain mean squared error between student and teacher tensors."""
from typing import Optional

from torch import Tensor

from mmkdflow.models.core import DistillContext
from mmkdflow.registry import MODELS
from .base import BaseDistillLoss


@MODELS.register_module()
class MSELoss(BaseDistillLoss):
    r"""Mean squared error: ``loss = mean((s - t)^2)`` over all elements.

    Element-wise loss ``(s - t)^2``, with the input's shape (also the shape
    ``weight`` broadcasts to). Reductions: ``'mean'`` (default), ``'sum'``,
    or ``'none'`` (the squared differences); no ``'batchmean'`` (the
    per-row mean of the class-distribution losses KD and DKD): the loss
    has no rows of classes.

    Args:
        loss_weight (float): Factor the loss is multiplied by. Defaults to
            1.0.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``. Defaults to
            'mean'.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def compute_loss(self, student: Tensor, teacher: Tensor,
                     ctx: Optional[DistillContext]) -> Tensor:
        return (student - teacher).pow(2)
