"""ViTKD: feature distillation between vision transformers' tokens."""
import math
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor

from mmkdflow.models.core import DistillContext
from mmkdflow.registry import MODELS
from .base import BaseDistillLoss, positive

_MODES = ('mimic', 'generate')


def random_token_mask(batch: int, num_tokens: int, mask_ratio: float,
                      device=None,
                      generator: Optional[torch.Generator] = None) -> Tensor:
    """Mask ``num_tokens - int(num_tokens * (1 - mask_ratio))`` random
    tokens of each image.

    Args:
        batch (int): Images B.
        num_tokens (int): Tokens N per image.
        mask_ratio (float): lambda, the fraction of tokens masked.
        device (torch.device, optional): Of the mask. Defaults to None.
        generator (torch.Generator, optional): Of the draw. Defaults to
            None (torch's global generator).

    Returns:
        Tensor: ``(B, N)`` float mask, 1 on masked tokens, 0 on kept ones.
    """
    keep = int(num_tokens * (1 - mask_ratio))
    noise = torch.rand(batch, num_tokens, device=device, generator=generator)
    order = noise.argsort(dim=1)
    mask = torch.ones(batch, num_tokens, device=device)
    mask.scatter_(1, order[:, :keep], 0.)
    return mask


@MODELS.register_module()
class ViTKDLoss(BaseDistillLoss):
    r"""ViTKD (Yang et al., arXiv:2209.02432) on ``(B, N, C)`` tokens.

    ViTKD mimics the teacher's shallow layers and generates its deep
    layer. One loss object handles one layer, in one ``mode``; a recipe
    has one point per layer (DeiT: mimic on layers 0 and 1, generate on the
    last layer) and sets ``loss_weight`` to alpha (mimic, 3e-5) or beta
    (generate, 3e-6). The first ``num_extra_tokens`` tokens (the class
    token) are dropped from both sides; ``f`` is a ``Linear(C_s, C_t)``
    (identity when ``C_s == C_t``).

    ``mode='mimic'``, per image:

    .. math::

        L_{mimic} = \sum_{i=1}^{N}\sum_{c=1}^{C_t}
                    (F^T_{i,c} - f(F^S)_{i,c})^2

    ``mode='generate'``: a random mask :math:`M` (1 on
    ``N - int(N (1 - lambda))`` tokens, :func:`random_token_mask`) replaces
    the masked student tokens by a learned token :math:`m`, a generative
    block :math:`G` (3x3 conv, ReLU, 3x3 conv on the tokens as a
    :math:`\sqrt N \times \sqrt N` map) restores them, and only the masked
    tokens are matched:

    .. math::

        L_{gen} = \frac{1}{\lambda}\sum_{i=1}^{N} M_i \sum_{c=1}^{C_t}
                  (F^T_{i,c} - G((1 - M) \odot f(F^S) + M \odot m)_{i,c})^2

    The :math:`1/\lambda` is the authors' released normalisation.

    Element-wise loss: one value per image, ``(B,)`` (the shape ``weight``
    broadcasts to). Reductions: ``'batchmean'`` (default, the mean over
    the images: the released sums divided by B), ``'sum'`` or ``'none'``.

    Args:
        student_dims (int): C_s, channels of the student tokens.
        teacher_dims (int): C_t, channels of the teacher tokens.
        mode (str): ``'mimic'`` or ``'generate'``. Defaults to 'mimic'.
        mask_ratio (float): lambda, in (0, 1). Defaults to 0.5.
        num_extra_tokens (int): Leading tokens that are not patches.
            Defaults to 1.
        loss_weight (float): alpha or beta. Defaults to 1.0.
        reduction (str): See above. Defaults to 'batchmean'.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    allowed_reductions = ('batchmean', 'sum', 'none')
    #: The loss maps C_s to C_t itself: a point needs no connector.
    maps_channels = True

    def __init__(self,
                 student_dims: int,
                 teacher_dims: int,
                 mode: str = 'mimic',
                 mask_ratio: float = 0.5,
                 num_extra_tokens: int = 1,
                 loss_weight: float = 1.0,
                 reduction: str = 'batchmean',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss_weight, reduction, init_cfg)
        if mode not in _MODES:
            raise ValueError(f'ViTKDLoss: mode must be one of {_MODES}, got '
                             f'{mode!r}')
        for name, value in (('student_dims', student_dims),
                            ('teacher_dims', teacher_dims)):
            if isinstance(value, bool) or not isinstance(value, int) or \
                    value < 1:
                raise ValueError(f'ViTKDLoss: {name} must be a positive '
                                 f'int, got {value!r}')
        if not 0. < mask_ratio < 1.:
            raise ValueError(f'ViTKDLoss: mask_ratio (lambda) must be in '
                             f'(0, 1), got {mask_ratio}')
        if isinstance(num_extra_tokens, bool) or not isinstance(
                num_extra_tokens, int) or num_extra_tokens < 0:
            raise ValueError(f'ViTKDLoss: num_extra_tokens must be an int '
                             f'>= 0, got {num_extra_tokens!r}')
        self.student_dims, self.teacher_dims = student_dims, teacher_dims
        self.mode = mode
        self.mask_ratio = positive('mask_ratio', mask_ratio)
        self.num_extra_tokens = num_extra_tokens
        self.align_proj = nn.Identity() if student_dims == teacher_dims \
            else nn.Linear(student_dims, teacher_dims)
        if mode == 'generate':
            self.mask_token = nn.Parameter(torch.zeros(1, 1, teacher_dims))
            self.generation = nn.Sequential(
                nn.Conv2d(teacher_dims, teacher_dims, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(teacher_dims, teacher_dims, 3, padding=1))

    def check_shapes(self, student: Tensor, teacher: Tensor) -> None:
        """Tokens ``(B, N, C)`` on both sides, the configured channels,
        the same B and N, and (to generate) a square patch grid.

        Raises:
            ValueError: Naming the shapes and the setting that fits them.
        """
        s_shape, t_shape = tuple(student.shape), tuple(teacher.shape)
        if student.dim() != 3 or teacher.dim() != 3:
            raise ValueError(
                f'ViTKDLoss takes token tensors (B, N, C), got student '
                f'{s_shape} and teacher {t_shape}; read a transformer layer '
                f"(e.g. 'backbone.layers.0' or 'backbone.ln1')")
        if s_shape[2] != self.student_dims:
            raise ValueError(
                f'ViTKDLoss: student tokens {s_shape} have {s_shape[2]} '
                f'channels; set student_dims={s_shape[2]}')
        if t_shape[2] != self.teacher_dims:
            raise ValueError(
                f'ViTKDLoss: teacher tokens {t_shape} have {t_shape[2]} '
                f'channels; set teacher_dims={t_shape[2]}')
        if s_shape[:2] != t_shape[:2]:
            raise ValueError(
                f'ViTKDLoss: student {s_shape} vs teacher {t_shape}: the '
                f'batch and token counts must match (same patch size and '
                f'extra tokens)')
        patches = s_shape[1] - self.num_extra_tokens
        if patches < 1:
            raise ValueError(
                f'ViTKDLoss: {s_shape[1]} tokens leave no patch token after '
                f'num_extra_tokens={self.num_extra_tokens}')
        if self.mode == 'generate' and math.isqrt(patches) ** 2 != patches:
            raise ValueError(
                f'ViTKDLoss: {patches} patch tokens (of {s_shape}) do not '
                f'form a square grid for the generative block; check '
                f'num_extra_tokens={self.num_extra_tokens}')

    def prepare_target(self, teacher: Tensor) -> Tensor:
        """The teacher's patch tokens (extra tokens dropped).

        Returns:
            Tensor: The ``(B, N, C)`` patch tokens.
        """
        return teacher[:, self.num_extra_tokens:]

    def generate(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """``G((1 - M) * x + M * m)`` on ``(B, N, C)`` patch tokens.

        Returns:
            Tensor: The generated tokens, ``(B, N, C)``.
        """
        b, n, c = tokens.shape
        mask = mask.unsqueeze(-1)
        x = tokens * (1 - mask) + self.mask_token * mask
        side = math.isqrt(n)
        x = x.transpose(1, 2).reshape(b, c, side, side)
        return self.generation(x).flatten(2).transpose(1, 2)

    def compute_loss(self, student: Tensor, teacher: Tensor,
                     ctx: Optional[DistillContext]) -> Tensor:
        x = self.align_proj(student[:, self.num_extra_tokens:])
        if self.mode == 'mimic':
            return (x - teacher).pow(2).sum(dim=(1, 2))
        mask = random_token_mask(x.shape[0], x.shape[1], self.mask_ratio,
                                 x.device)
        sq = (self.generate(x, mask) - teacher).pow(2) * mask.unsqueeze(-1)
        return sq.sum(dim=(1, 2)) / self.mask_ratio

    def extra_repr(self) -> str:
        return (f'mode={self.mode!r}, student_dims={self.student_dims}, '
                f'teacher_dims={self.teacher_dims}, mask_ratio='
                f'{self.mask_ratio}, {super().extra_repr()}')
