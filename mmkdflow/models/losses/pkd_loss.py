"""PKD: feature imitation after per-channel normalisation."""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor

from mmkdflow.models.core import DistillContext
from mmkdflow.registry import MODELS
from mmkdflow.models.utils import from_map, to_map
from .base import BaseDistillLoss, nonnegative


def normalize_channels(feat: Tensor, eps: float = 1e-6,
                       unbiased: bool = False) -> Tensor:
    """Zero mean, unit std per channel of an ``(N, C, H, W)`` tensor.

    ``(x - mean_c) / (std_c + eps)`` with the statistics of channel ``c``
    taken over ``(N, H, W)``. ``std`` is the population (biased) standard
    deviation by default, so a single element per channel normalises to 0
    instead of NaN; ``unbiased=True`` divides by ``N*H*W - 1`` as
    MMRazor's, mmdet's and FM-KT's released PKD do (a relative difference
    of about ``1 / (2 N H W)`` in scale).

    Returns:
        Tensor: The normalised tensor, of ``x``'s shape.
    """
    dims = (0, 2, 3)
    mean = feat.mean(dim=dims, keepdim=True)
    std = feat.std(dim=dims, keepdim=True, correction=int(unbiased))
    return (feat - mean) / (std + eps)


@MODELS.register_module()
class PKDLoss(BaseDistillLoss):
    r"""PKD (Cao et al., NeurIPS 2022): Pearson-correlation feature imitation.

    Both features are normalised per channel over ``(N, H, W)``
    (:func:`normalize_channels`), then::

        loss = MSE(norm(F_s), norm(F_t)) / 2

    which equals ``1 - mean_c pearson(F_s[:, c], F_t[:, c])`` up to ``eps``:
    it ignores the scale and offset of each channel. ``(B, K)`` inputs are
    treated as ``(B, K, 1, 1)``.

    Element-wise loss: the halved squared differences of the normalised
    features, with the input's shape (the shape ``weight`` broadcasts to).
    Reductions: ``'mean'`` (default) averages them over all elements,
    ``'sum'`` sums them, ``'none'`` returns them; no ``'batchmean'`` (the
    per-row mean of KD and DKD): the loss has no rows of classes.

    Deliberate difference from FM-KT's released detection code, which
    normalises with the unbiased std and ``eps = 1e-8``: ours uses the
    population std (defined for one element per channel) and ``eps = 1e-6``
    (no blow-up on a constant channel). ``unbiased=True, eps=1e-8``
    reproduces the released normalisation.

    Args:
        resize_stu (bool): When the spatial sizes differ, resize the student to
            the teacher's size (bilinear) instead of raising. Defaults to
            False.
        eps (float): Added to the std of each channel. Defaults to 1e-06.
        unbiased (bool): Unbiased (``N*H*W - 1``) std instead of the population
            one. Defaults to False.
        loss_weight (float): Factor the loss is multiplied by. Defaults to 1.0.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``. Defaults to
            'mean'.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 resize_stu: bool = False,
                 eps: float = 1e-6,
                 unbiased: bool = False,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss_weight, reduction, init_cfg)
        self.resize_stu = resize_stu
        self.eps = nonnegative('eps', eps)
        self.unbiased = bool(unbiased)

    def align(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Resize the student to the teacher's ``(H, W)`` if asked to.

        Returns:
            Tensor: The (resized) student.
        """
        if (self.resize_stu and student.dim() == 4 and teacher.dim() == 4
                and student.shape[2:] != teacher.shape[2:]):
            student = F.interpolate(
                student, size=teacher.shape[2:], mode='bilinear',
                align_corners=False)
        return student

    def prepare_target(self, teacher: Tensor) -> Tensor:
        """The normalised teacher, ``(N, C, H, W)`` (``(B, K)`` as
        ``(B, K, 1, 1)``): once per teacher however many students.

        Returns:
            Tensor: The normalised teacher.
        """
        return normalize_channels(to_map(teacher)[0], self.eps,
                                  self.unbiased)

    def compute_loss(self, student: Tensor, teacher: Tensor,
                     ctx: Optional[DistillContext]) -> Tensor:
        student, was_vector = to_map(student)
        diff = normalize_channels(student, self.eps, self.unbiased) - teacher
        return from_map(diff.pow(2) / 2, was_vector)
