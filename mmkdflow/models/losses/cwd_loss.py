"""Channel-wise distillation for dense prediction."""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor

from mmkdflow.models.core import DistillContext
from mmkdflow.registry import MODELS
from .base import BaseDistillLoss, positive


@MODELS.register_module()
class ChannelWiseDivergence(BaseDistillLoss):
    r"""Channel-wise distillation, CWD (Shu et al., ICCV 2021).

    Each channel of an ``(N, C, H, W)`` map becomes a distribution over the
    ``H*W`` positions, ``p[n, c] = softmax_{HW}(x[n, c] / tau)``, and::

        l[n, c] = tau^2 * sum_hw p_t[n,c,hw] * (log p_t - log p_s)[n,c,hw]
                = tau^2 * KL(p_t[n, c] || p_s[n, c])

    Element-wise loss: ``l`` per channel map, shape ``(N, C)`` (the shape
    ``weight`` broadcasts to). Reductions: ``'mean'`` (default) divides the
    sum of ``l`` by ``N * C``, i.e. the KL is summed over positions and
    averaged over the channel maps (the normalisation of the paper);
    ``'sum'`` returns the sum of ``l``; ``'none'`` returns ``l``. The
    ``'mean'`` is the channel-map analogue of ``'batchmean'`` (the KL summed
    over a distribution's support, averaged over the distributions), which
    as a name is left to KD and DKD.

    Args:
        tau (float): Temperature of the spatial softmax. Defaults to 1.0.
        loss_weight (float): Factor the loss is multiplied by. Defaults to 1.0.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``. Defaults to
            'mean'.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 tau: float = 1.0,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss_weight, reduction, init_cfg)
        self.tau = positive('tau', tau)

    def compute_loss(self, student: Tensor, teacher: Tensor,
                     ctx: Optional[DistillContext]) -> Tensor:
        if student.dim() != 4:
            raise ValueError(
                f'ChannelWiseDivergence expects (N, C, H, W) maps, got '
                f'{tuple(student.shape)}')
        log_p_s = F.log_softmax(student.flatten(2) / self.tau, dim=2)
        log_p_t = F.log_softmax(teacher.flatten(2) / self.tau, dim=2)
        per_map = F.kl_div(
            log_p_s, log_p_t, reduction='none', log_target=True).sum(2)
        return per_map * self.tau**2
