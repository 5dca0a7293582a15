"""Decoupled knowledge distillation: target and non-target parts."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkdflow.models.core import DistillContext
from mmkdflow.registry import MODELS
from .base import BaseDistillLoss, nonnegative, positive


@MODELS.register_module()
class DKDLoss(BaseDistillLoss):
    r"""Decoupled knowledge distillation (Zhao et al., CVPR 2022).

    With ``y`` the ground-truth class of a sample and ``T`` the temperature:

    * TCKD, on the binary (target, non-target) probabilities
      ``b = [p[y], 1 - p[y]]`` of ``p = softmax(z / T)``::

          TCKD = T^2 * KL(b_t || b_s)

    * NCKD, on the distribution over the non-target classes, obtained by
      subtracting 1000 from the target logit before the softmax (which sends
      its probability to 0)::

          q = softmax(z / T - 1000 * onehot(y))
          NCKD = T^2 * KL(q_t || q_s)

    * ``l = alpha * TCKD + beta * NCKD``, times the warm-up factor
      ``min((ctx.epoch + 1) / warmup, 1)`` when ``warmup > 0``. This is the
      original ``min(epoch / warmup, 1)`` with its 1-based epoch, written for
      the 0-based ``ctx.epoch``: the first epoch gets ``1 / warmup``.

    Element-wise loss: ``l`` per sample, shape ``(B,)`` (the shape
    ``weight`` broadcasts to). Reductions: ``'batchmean'`` (default) is
    torch's ``F.kl_div(..., reduction='batchmean')`` on each divergence:
    summed over the classes, averaged over the batch; ``'mean'`` averages
    ``l`` over the batch too, so both give the same value; ``'sum'`` sums
    it; ``'none'`` returns ``l``. The labels come from ``ctx``
    (``requires_labels``).

    Args:
        alpha (float): Weight of TCKD. Defaults to 1.0.
        beta (float): Weight of NCKD. Defaults to 8.0.
        temperature (float): Softening temperature ``T``. Defaults to 4.0.
        warmup (int): Warm-up length in epochs; 0 disables it. Defaults to 0.
        loss_weight (float): Factor the loss is multiplied by. Defaults to 1.0.
        reduction (str): ``'batchmean'``, ``'mean'``, ``'sum'`` or ``'none'``.
            Defaults to 'batchmean'.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    requires_labels = True
    allowed_reductions = ('batchmean', 'mean', 'sum', 'none')

    def __init__(self,
                 alpha: float = 1.0,
                 beta: float = 8.0,
                 temperature: float = 4.0,
                 warmup: int = 0,
                 loss_weight: float = 1.0,
                 reduction: str = 'batchmean',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss_weight, reduction, init_cfg)
        for name, value in (('alpha', alpha), ('beta', beta)):
            if not value >= 0:  # also refuses NaN
                raise ValueError(
                    f'DKDLoss {name} must be >= 0 (a negative weight '
                    f'maximises the divergence it should minimise; 0 turns '
                    f'the term off), got {value}')
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.temperature = positive('temperature', temperature)
        self.warmup = int(nonnegative('warmup', warmup))

    def warmup_factor(self, ctx: DistillContext) -> float:
        """``min((ctx.epoch + 1) / warmup, 1)``, or 1 without warm-up.

        Returns:
            float: The factor, in (0, 1].
        """
        if self.warmup <= 0:
            return 1.0
        return min((ctx.epoch + 1) / self.warmup, 1.0)

    def compute_loss(self, student: Tensor, teacher: Tensor,
                     ctx: DistillContext) -> Tensor:
        if student.dim() != 2 or student.shape[1] < 2:
            raise ValueError(
                f'DKDLoss expects logits of shape (B, K) with K >= 2, got '
                f'{tuple(student.shape)}')
        labels = ctx.gt_labels().to(student.device)
        if labels.shape[0] != student.shape[0]:
            raise ValueError(
                f'DKDLoss: {labels.shape[0]} labels for a batch of '
                f'{student.shape[0]} logits')
        T = self.temperature
        z_s, z_t = student / T, teacher / T
        target = F.one_hot(labels, student.shape[1]).bool()

        tckd = _kl_rows(_binary_log_probs(z_s, target),
                        _binary_log_probs(z_t, target))
        # Masking by -1000 (rather than -inf) keeps the target entries
        # finite; their probability underflows to exactly 0 in float32.
        nckd = _kl_rows(
            F.log_softmax(z_s - 1000.0 * target, dim=1),
            F.log_softmax(z_t - 1000.0 * target, dim=1))
        per_sample = (self.alpha * tckd + self.beta * nckd) * T**2
        return per_sample * self.warmup_factor(ctx)


def _binary_log_probs(z: Tensor, target: Tensor) -> Tensor:
    """``log [p[y], 1 - p[y]]`` of ``p = softmax(z)``, as a ``(B, 2)`` tensor.

    Computed with log-sum-exp over the target and non-target logits, which is
    exact and avoids ``log(1 - p[y])`` when ``p[y]`` is close to 1.
    """
    log_norm = torch.logsumexp(z, dim=1)
    log_target = z.masked_fill(~target, float('-inf')).logsumexp(dim=1)
    log_other = z.masked_fill(target, float('-inf')).logsumexp(dim=1)
    return torch.stack([log_target, log_other], dim=1) - log_norm[:, None]


def _kl_rows(log_p_s: Tensor, log_p_t: Tensor) -> Tensor:
    """``KL(p_t || p_s)`` per row, from log-probabilities."""
    return F.kl_div(log_p_s, log_p_t, reduction='none', log_target=True).sum(1)
