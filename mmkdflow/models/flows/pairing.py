"""Pair decoupling of FM-KT: many-to-many student/teacher pairs."""
from typing import List, Optional

import torch
from torch import Tensor


def decoupling_permutation(batch_size: int, dirac_ratio: float,
                           device: Optional[torch.device] = None,
                           generator: Optional[torch.Generator] = None
                           ) -> Tensor:
    r"""Batch permutation of pair decoupling.

    ``m = round((1 - dirac_ratio) * B)`` samples are drawn at random and
    their targets are cycled among themselves (a random cyclic shift, so
    every drawn sample gets another drawn sample's target); the other
    ``B - m`` keep their own. ``dirac_ratio = 1`` gives the identity (the
    one-to-one, "Dirac" coupling of each student with its own teacher);
    ``m = 1`` cannot move anything and also gives the identity.

    Args:
        batch_size: B.
        dirac_ratio: :math:`\beta_d \in [0, 1]`.
        device: Device of the result.
        generator: Random generator (default: torch's global one).

    Returns:
        A ``(B,)`` long tensor ``perm``: sample ``b`` is paired with target
        ``perm[b]``.
    """
    if not 0. <= dirac_ratio <= 1.:
        raise ValueError(f'dirac_ratio must be in [0, 1], got {dirac_ratio}')
    perm = torch.arange(batch_size)
    m = int(round((1. - dirac_ratio) * batch_size))
    if m >= 2:
        chosen = torch.randperm(batch_size, generator=generator)[:m]
        perm[chosen] = chosen.roll(1)
    return perm.to(device) if device is not None else perm


def permute_targets(targets: List[Tensor], perm: Tensor) -> List[Tensor]:
    """Apply one batch permutation to every target (e.g. every FPN level).

    Never in place: each result is a new tensor (``index_select``); the
    inputs, which other losses may still read, are left untouched. (The
    released code writes the permutation into the teacher tensor in place;
    we deliberately do not.)
    """
    return [t.index_select(0, perm.to(t.device)) for t in targets]
