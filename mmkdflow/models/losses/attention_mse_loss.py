"""Attention-weighted MSE (FGD-style), DiffKD's "dagger" detection loss."""
from typing import List, Optional, Tuple

from torch import Tensor

from mmkdflow.models.core import DistillContext
from mmkdflow.registry import MODELS
from .base import BaseDistillLoss, Reduction, positive


def feature_attention(feat: Tensor,
                      temperature: float) -> Tuple[Tensor, Tensor]:
    """Spatial and channel attention of an ``(N, C, H, W)`` feature.

    ``A_s = H*W * softmax_{HW}(mean_C |F| / T)``, shape ``(N, H, W)``, and
    ``A_c = C * softmax_C(mean_{HW} |F| / T)``, shape ``(N, C)``. Both average
    to 1, so uniform attention leaves a loss weighted by them unchanged.

    Returns:
        tuple[Tensor, Tensor]: The spatial ``(N, H, W)`` and channel ``(N, C)``
        attention.
    """
    n, c, h, w = feat.shape
    magnitude = feat.abs()
    spatial = magnitude.mean(dim=1).reshape(n, h * w) / temperature
    spatial = h * w * spatial.softmax(dim=1).reshape(n, h, w)
    channel = magnitude.mean(dim=(2, 3)) / temperature
    channel = c * channel.softmax(dim=1)
    return spatial, channel


@MODELS.register_module()
class AttentionMSELoss(BaseDistillLoss):
    r"""Squared error weighted by the teacher's spatial and channel attention.

    The focal part of FGD (Yang et al., CVPR 2022), used by DiffKD's "dagger"
    variant on FPN features. With ``A_s, A_c`` from the teacher feature
    (:func:`feature_attention`, temperature ``T``)::

        w[n, c, h, w] = A_s[n, h, w] * A_c[n, c]
        L_feat = mean_{n,c,h,w} (F_s - F_t)^2 * w

    Normalisation: the mean over all elements, so that with uniform attention
    (``A_s = A_c = 1``) the loss equals :class:`MSELoss`. With
    ``alpha_at > 0`` an attention-imitation term is added::

        L_at = mean |A_s(F_s) - A_s(F_t)| + mean |A_c(F_s) - A_c(F_t)|
        loss = L_feat + alpha_at * L_at

    Element-wise loss: the attention-weighted squared errors, with the
    input's shape (the shape ``weight`` broadcasts to; ``weight`` and
    ``avg_factor`` apply to ``L_feat`` only). Reductions: ``'mean'``
    (default) as above; ``'sum'`` replaces every mean by a sum; ``'none'``
    returns the weighted squared errors and is not allowed together with
    ``alpha_at > 0``; no ``'batchmean'`` (the per-row mean of KD and DKD):
    the loss has no rows of classes.

    Args:
        temperature (float): Temperature ``T`` of both attention softmaxes.
            Defaults to 0.5.
        alpha_at (float): Weight of the attention-imitation term; 0 turns it
            off. Defaults to 0.0.
        loss_weight (float): Factor the loss is multiplied by. Defaults to 1.0.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``. Defaults to
            'mean'.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    #: Weight of the attention-imitation term (set by ``__init__``).
    alpha_at: float = 0.0

    def __init__(self,
                 temperature: float = 0.5,
                 alpha_at: float = 0.0,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss_weight, reduction, init_cfg)
        self.alpha_at = float(alpha_at)
        self.check_reduction(reduction)
        self.temperature = positive('temperature', temperature)

    def check_reduction(self, reduction: str) -> str:
        """Also refuses ``'none'`` with the imitation term (at build, and
        for a ``reduction_override``).

        Returns:
            str: ``reduction`` unchanged.
        """
        reduction = super().check_reduction(reduction)
        if self.alpha_at and reduction == 'none':
            raise ValueError(
                "AttentionMSELoss: reduction='none' cannot carry the "
                'attention-imitation term; use alpha_at=0 or reduce')
        return reduction

    def compute_loss(self, student: Tensor, teacher: Tensor,
                     ctx: Optional[DistillContext]) -> Tensor:
        return self._terms(student, teacher)[0]

    def reduced_loss(self, student: Tensor, teacher: Tensor,
                     ctx: Optional[DistillContext],
                     reduce: Reduction) -> Tensor:
        """``reduce(L_feat)`` plus ``alpha_at`` times the reduced (never
        weighted) imitation terms.

        Returns:
            Tensor: The loss.
        """
        feature, imitation = self._terms(student, teacher)
        loss = reduce(feature)
        if imitation:
            loss = loss + self.alpha_at * sum(
                reduce.unweighted(term) for term in imitation)
        return loss

    def _terms(self, student: Tensor,
               teacher: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """The element-wise feature term and, with ``alpha_at``, the
        element-wise attention differences."""
        if student.dim() != 4:
            raise ValueError(
                f'AttentionMSELoss expects (N, C, H, W) features, got '
                f'{tuple(student.shape)}')
        att_s_t, att_c_t = feature_attention(teacher, self.temperature)
        weight = att_s_t[:, None] * att_c_t[:, :, None, None]
        feature = (student - teacher).pow(2) * weight
        if not self.alpha_at:
            return feature, []
        att_s_s, att_c_s = feature_attention(student, self.temperature)
        return feature, [(att_s_s - att_s_t).abs(),
                         (att_c_s - att_c_t).abs()]
