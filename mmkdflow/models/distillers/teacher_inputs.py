"""The teacher's inputs, normalised the teacher's own way.

The distiller preprocesses a batch once, with the student's data
preprocessor (resizing, padding, batch augments), and feeds the same
tensor to the teacher. When the two models normalise differently (a
caffe-style teacher: BGR, std 1; a pytorch-style student: RGB, std 58),
:class:`TeacherInputs` turns the student's tensor into the one the
teacher's own preprocessor would give: undo the student's normalisation,
reorder the channels, apply the teacher's. Padding is written with the
teacher's pad value. Both models still see the same images, augments
included.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from torch import Tensor


def normalisation(preprocessor: nn.Module
                  ) -> Optional[Tuple[Tensor, Tensor, bool, float]]:
    """``(mean, std, flips_channels, pad_value)`` of an image data
    preprocessor (MMEngine's, mmdet's, mmseg's or mmpretrain's).

    Args:
        preprocessor (nn.Module): A built data preprocessor.

    Returns:
        tuple | None: Per-channel ``mean`` and ``std`` (1-D; 0 and 1 when
        it does not normalise), whether it reverses the channel order
        (``bgr_to_rgb`` / ``to_rgb``), and the value padding gets. ``None``
        for a preprocessor that is not an image one.
    """
    if not hasattr(preprocessor, '_enable_normalize'):
        return None
    if preprocessor._enable_normalize:
        mean = preprocessor.mean.detach().flatten().float()
        std = preprocessor.std.detach().flatten().float()
    else:
        mean, std = torch.zeros(1), torch.ones(1)
    flips = False
    for name in ('_channel_conversion', 'channel_conversion', 'to_rgb'):
        if hasattr(preprocessor, name):
            flips = bool(getattr(preprocessor, name))
            break
    pad = getattr(preprocessor, 'pad_value',
                  getattr(preprocessor, 'pad_val', 0))
    return mean, std, flips, float(pad)


def _describe(mean: Tensor, std: Tensor, flips: bool) -> str:
    def values(t: Tensor) -> str:
        return '[' + ', '.join(f'{v:g}' for v in t.tolist()) + ']'
    return f'mean={values(mean)}, std={values(std)}, bgr_to_rgb={flips}'


class TeacherInputs(nn.Module):
    """Re-normalise the student's preprocessed batch for the teacher.

    With :math:`P` the channel reversal when exactly one of the two
    preprocessors reverses the channels (else the identity):

    .. math::
        x_T = \\frac{P(x_S \\sigma_S + \\mu_S) - \\mu_T}{\\sigma_T}
            = P(x_S) \\cdot \\frac{P(\\sigma_S)}{\\sigma_T}
              + \\frac{P(\\mu_S) - \\mu_T}{\\sigma_T}

    Build it with :meth:`between`, which returns ``None`` when the two
    normalise alike. Its buffers are not saved in checkpoints.

    Args:
        scale (Tensor): :math:`P(\\sigma_S) / \\sigma_T`, per channel.
        shift (Tensor): :math:`(P(\\mu_S) - \\mu_T) / \\sigma_T`, per
            channel.
        flip (bool): Reverse the channel order first.
        pad_value (float): What the teacher's preprocessor pads with.
    """

    def __init__(self, scale: Tensor, shift: Tensor, flip: bool,
                 pad_value: float) -> None:
        super().__init__()
        self.register_buffer('scale', scale.view(-1, 1, 1), persistent=False)
        self.register_buffer('shift', shift.view(-1, 1, 1), persistent=False)
        self.flip = flip
        self.pad_value = pad_value

    @classmethod
    def between(cls, student: nn.Module,
                teacher: nn.Module) -> Optional['TeacherInputs']:
        """The transform from the student's inputs to the teacher's.

        Args:
            student (nn.Module): The student's data preprocessor.
            teacher (nn.Module): The teacher's data preprocessor.

        Returns:
            TeacherInputs | None: ``None`` when both normalise alike, or
            when either is not an image preprocessor.
        """
        ours, theirs = normalisation(student), normalisation(teacher)
        if ours is None or theirs is None:
            return None
        (mean_s, std_s, flip_s, _), (mean_t, std_t, flip_t, pad_t) = \
            ours, theirs
        channels = max(len(mean_s), len(mean_t))
        mean_s, std_s, mean_t, std_t = (
            t.expand(channels) if len(t) == 1 else t
            for t in (mean_s, std_s, mean_t, std_t))
        flip = flip_s != flip_t
        if not flip and torch.equal(mean_s, mean_t) and \
                torch.equal(std_s, std_t):
            return None
        if flip:
            mean_s, std_s = mean_s.flip(0), std_s.flip(0)
        print_log(
            f'teacher inputs: the student normalises with '
            f'{_describe(*ours[:3])}, the teacher with '
            f'{_describe(*theirs[:3])}; the teacher gets the batch '
            f'normalised its own way', 'current')
        return cls(std_s / std_t, (mean_s - mean_t) / std_t, flip, pad_t)

    def forward(self, inputs: Tensor,
                data_samples: Optional[Sequence] = None) -> Tensor:
        """The teacher's version of a preprocessed ``(B, C, H, W)`` batch.

        Args:
            inputs (Tensor): The batch as the student's preprocessor gave.
            data_samples (Sequence, optional): Their ``img_shape`` (the size
                before padding) marks the padding to rewrite. Defaults to None.

        Returns:
            Tensor: A new tensor; ``inputs`` is unchanged.
        """
        if not isinstance(inputs, Tensor) or inputs.dim() != 4 or \
                inputs.shape[1] != self.scale.shape[0]:
            shape = tuple(inputs.shape) if isinstance(inputs, Tensor) \
                else type(inputs).__name__
            raise ValueError(
                f'TeacherInputs: expected a (B, {self.scale.shape[0]}, H, '
                f'W) image batch to re-normalise for the teacher, got '
                f'{shape}; give the teacher the same data_preprocessor as '
                f'the student')
        x = inputs.flip(1) if self.flip else inputs
        x = x * self.scale.to(x.dtype) + self.shift.to(x.dtype)
        height, width = x.shape[2:]
        for i, sample in enumerate(data_samples or ()):
            shape = getattr(sample, 'metainfo', {}).get('img_shape')
            if shape is None:
                continue
            h, w = shape[:2]
            if h < height:
                x[i, :, h:, :] = self.pad_value
            if w < width:
                x[i, :, :h, w:] = self.pad_value
        return x
