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

    Reductions: ``'batchmean'`` (default) and ``'mean'`` both average ``l``
    over the rows (the sum over classes is kept, as in
    ``F.kl_div(..., reduction='batchmean')``); ``'sum'`` sums over the rows;
    ``'none'`` returns ``l`` with shape ``(B,)`` or ``(B, H, W)``.

    Args:
        temperature: Softening temperature ``T``.
        loss_weight: Factor the loss is multiplied by.
        reduction: ``'batchmean'``, ``'mean'``, ``'sum'`` or ``'none'``.
        init_cfg: Initialisation config.
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
        per_row = per_row * T**2
        if self.reduction in ('batchmean', 'mean'):
            return per_row.mean()
        if self.reduction == 'sum':
            return per_row.sum()
        # 'none': one value per sample, or per pixel for dense logits.
        return per_row.reshape(
            (student.shape[0], ) + tuple(student.shape[2:]))
