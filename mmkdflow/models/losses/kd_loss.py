"""Hinton knowledge distillation on softened class probabilities."""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor

from mmkdflow.models.core import DistillContext
from mmkdflow.registry import MODELS
from .base import BaseDistillLoss, logits_to_rows, positive


@MODELS.register_module()
class KDLoss(BaseDistillLoss):
    r"""Knowledge distillation (Hinton et al., 2015).

    For each row of logits (one sample, or one pixel of dense logits)::

        l = T^2 * KL(softmax(t / T) || softmax(s / T))
          = T^2 * sum_k p_t[k] * (log p_t[k] - log p_s[k])

    The ``T^2`` factor keeps the gradient scale independent of ``T``.
    Dense logits ``(B, K, H, W)`` are flattened to ``(B*H*W, K)`` rows first.

    Element-wise loss: ``l`` of shape ``(B,)`` or ``(B, H, W)`` (the shape
    ``weight`` broadcasts to). Reductions: ``'batchmean'`` (default) is
    torch's ``F.kl_div(..., reduction='batchmean')`` on the rows: ``l``
    summed over the classes, averaged over the rows (samples, or pixels of
    dense logits); ``'mean'`` averages ``l`` over the rows too, so both
    give the same value; ``'sum'`` sums over the rows; ``'none'`` returns
    ``l``.

    Args:
        temperature (float): Softening temperature ``T``. Defaults to 1.0.
        loss_weight (float): Factor the loss is multiplied by. Defaults to 1.0.
        reduction (str): ``'batchmean'``, ``'mean'``, ``'sum'`` or ``'none'``.
            Defaults to 'batchmean'.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    allowed_reductions = ('batchmean', 'mean', 'sum', 'none')

    def __init__(self,
                 temperature: float = 1.0,
                 loss_weight: float = 1.0,
                 reduction: str = 'batchmean',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss_weight, reduction, init_cfg)
        self.temperature = positive('temperature', temperature)

    def compute_loss(self, student: Tensor, teacher: Tensor,
                     ctx: Optional[DistillContext]) -> Tensor:
        T = self.temperature
        log_p_s = F.log_softmax(logits_to_rows(student) / T, dim=1)
        log_p_t = F.log_softmax(logits_to_rows(teacher) / T, dim=1)
        per_row = F.kl_div(
            log_p_s, log_p_t, reduction='none', log_target=True).sum(1)
        # one value per sample, or per pixel for dense logits
        return (per_row * T**2).reshape(
            (student.shape[0], ) + tuple(student.shape[2:]))
