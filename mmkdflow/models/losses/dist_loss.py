"""DIST: distillation by inter- and intra-class Pearson correlation."""
from typing import Optional

from torch import Tensor

from mmkdflow.models.core import DistillContext
from mmkdflow.registry import MODELS
from .base import (BaseDistillLoss, logits_to_rows, nonnegative,
                   positive)


def pearson_rows(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson correlation of matching rows of two ``(N, D)`` matrices.

    ``corr = <a - mean(a), b - mean(b)> / (|a - mean(a)| |b - mean(b)| + eps)``
    with the means taken over each row; returns an ``(N,)`` tensor.

    Returns:
        Tensor: The ``(N,)`` correlations.
    """
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


@MODELS.register_module()
class DISTLoss(BaseDistillLoss):
    r"""DIST (Huang et al., NeurIPS 2022): relation matching of predictions.

    With ``P_s = softmax(s / tau)`` and ``P_t = softmax(t / tau)`` as
    ``(N, K)`` matrices (N samples, or B*H*W pixels for dense logits
    ``(B, K, H, W)``, which are flattened first)::

        inter = 1 - mean_n corr(P_s[n, :], P_t[n, :])   # per prediction
        intra = 1 - mean_k corr(P_s[:, k], P_t[:, k])   # per class
        loss  = tau^2 * (beta * inter + gamma * intra)

    where ``corr`` is the Pearson correlation (:func:`pearson_rows`, with
    ``eps`` in the denominator). The loss is a scalar by construction (it
    relates whole rows and columns), so the only reduction is ``'mean'``
    (of that one value; no ``'batchmean'``, since the loss has no value per
    row), and a ``weight`` or ``avg_factor`` scales it.

    ``eps`` is 1e-8 by default (DIST's own code); FM-KT's released scripts
    use 1e-5 (``eps=1e-5`` reproduces them).

    Args:
        beta (float): Weight of the inter-class (per prediction) relation.
            Defaults to 1.0.
        gamma (float): Weight of the intra-class (per class) relation. Defaults
            to 1.0.
        tau (float): Softening temperature. Defaults to 1.0.
        eps (float): Added to the denominator of the correlation. Defaults to
            1e-08.
        loss_weight (float): Factor the loss is multiplied by. Defaults to 1.0.
        reduction (str): Only ``'mean'``. Defaults to 'mean'.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    allowed_reductions = ('mean', )

    def __init__(self,
                 beta: float = 1.0,
                 gamma: float = 1.0,
                 tau: float = 1.0,
                 eps: float = 1e-8,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss_weight, reduction, init_cfg)
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.tau = positive('tau', tau)
        self.eps = nonnegative('eps', eps)

    def compute_loss(self, student: Tensor, teacher: Tensor,
                     ctx: Optional[DistillContext]) -> Tensor:
        p_s = (logits_to_rows(student) / self.tau).softmax(dim=1)
        p_t = (logits_to_rows(teacher) / self.tau).softmax(dim=1)
        inter = 1 - pearson_rows(p_s, p_t, self.eps).mean()
        intra = 1 - pearson_rows(p_s.t(), p_t.t(), self.eps).mean()
        return self.tau**2 * (self.beta * inter + self.gamma * intra)
