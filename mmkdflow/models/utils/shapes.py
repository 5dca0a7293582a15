"""View vectors ``(B, C)`` as maps ``(B, C, 1, 1)`` and back: the one
reshape every module that takes both logits and feature maps uses."""
from typing import Tuple

from torch import Tensor


def to_map(x: Tensor) -> Tuple[Tensor, bool]:
    """Return ``x`` as ``(B, C, H, W)`` and whether it was a ``(B, C)``
    vector (viewed as ``(B, C, 1, 1)``).

    Returns:
        tuple[Tensor, bool]: The map and whether ``x`` was a vector.

    Raises:
        ValueError: For any other number of dimensions.
    """
    if x.dim() == 2:
        return x[:, :, None, None], True
    if x.dim() == 4:
        return x, False
    hint = ('; (B, N, C) transformer tokens go to a token loss (MSELoss, '
            'ViTKDLoss) or a ConvAdapter, or read a (B, C) class token / '
            '(B, C, H, W) map instead' if x.dim() == 3 else '')
    raise ValueError(f'expected a (B, C) vector or a (B, C, H, W) map, got '
                     f'shape {tuple(x.shape)}{hint}')


def from_map(x: Tensor, was_vector: bool) -> Tensor:
    """Undo :func:`to_map`: ``(B, C, 1, 1)`` back to ``(B, C)``.

    Returns:
        Tensor: ``x``, as a vector if ``was_vector``.
    """
    return x.flatten(1) if was_vector else x
