r"""Pair decoupling of FM-KT: many-to-many student/teacher pairs (step
(7) of :mod:`mmkdflow.models.fmkt`).

A fraction :math:`1 - \beta_d` of the batch (``dirac_ratio`` =
:math:`\beta_d`) gets other samples' teacher targets; :math:`\beta_d = 1`
(default) keeps every one-to-one ("Dirac") pair. Two draws:

* ``'cycle'`` (default, ours): ``m = round((1 - beta_d) B)`` samples drawn
  at random cycle their targets among themselves (each drawn sample gets
  another drawn sample's target, so exactly ``m`` pairs change when
  ``m >= 2``), with one draw for every level (e.g. FPN level) of the step.
* ``'released'`` (the authors' code): the first ``m = int((1 - beta_d) B)``
  rows of each level's targets are permuted by their own
  ``perm = torch.randperm(m)``, one per level, drawn in level order, and
  scattered as the released code does (``t[:m][perm] = t[:m].clone()``):
  row ``perm[i]`` of the result is row ``i`` of the targets. A row may
  stay in place, and with ``m <= 1`` nothing moves (B = 3 and
  :math:`\beta_d` = 0.5 give ``m = 1``).

Either way the targets are never permuted in place: each result is a new
tensor, the teacher tensors other losses read are untouched (the released
code writes the permutation into the teacher tensor in place; we
deliberately do not).
"""
from typing import List, Optional

import torch
from torch import Tensor

#: The draws of :class:`PairDecoupling`.
DECOUPLING_DRAWS = ('cycle', 'released')


def decoupling_permutation(batch_size: int, dirac_ratio: float,
                           device: Optional[torch.device] = None,
                           generator: Optional[torch.Generator] = None
                           ) -> Tensor:
    r"""The ``'cycle'`` batch permutation (see the module docstring).

    Args:
        batch_size (int): B.
        dirac_ratio (float): :math:`\beta_d \in [0, 1]` (checked by
            :class:`PairDecoupling`).
        device (torch.device, optional): Device of the result. Defaults to
            None.
        generator (torch.Generator, optional): Random generator; ``None``:
            torch's global one. Defaults to None.

    Returns:
        A ``(B,)`` long tensor ``perm``: sample ``b`` is paired with target
        ``perm[b]``.
    """
    perm = torch.arange(batch_size)
    m = int(round((1. - dirac_ratio) * batch_size))
    if m >= 2:
        chosen = torch.randperm(batch_size, generator=generator)[:m]
        perm[chosen] = chosen.roll(1)
    return perm.to(device) if device is not None else perm


def released_permutation(batch_size: int, dirac_ratio: float,
                         device: Optional[torch.device] = None,
                         generator: Optional[torch.Generator] = None
                         ) -> Tensor:
    r"""The ``'released'`` permutation of one level: the first
    ``int((1 - dirac_ratio) B)`` rows permuted by one ``randperm``, the
    others in place.

    Args:
        batch_size (int): B.
        dirac_ratio (float): :math:`\beta_d \in [0, 1]`.
        device (torch.device, optional): Device of the result. Defaults to
            None.
        generator (torch.Generator, optional): Random generator; ``None``:
            torch's global one. Defaults to None.

    Returns:
        A ``(B,)`` long tensor ``perm``, a scatter index as in the released
        code: row ``perm[i]`` of the decoupled targets is row ``i`` of the
        targets (gathering with ``torch.argsort(perm)`` gives the same).
    """
    m = int((1. - dirac_ratio) * batch_size)
    head = torch.randperm(m, generator=generator)
    perm = torch.cat([head, torch.arange(m, batch_size)])
    return perm.to(device) if device is not None else perm


class PairDecoupling:
    r"""Pair decoupling with ``dirac_ratio`` :math:`\beta_d` and one of
    :data:`DECOUPLING_DRAWS`, checked when built.

    Args:
        dirac_ratio (float): Fraction of the batch kept in one-to-one pairs, in
            [0, 1]; 1 turns decoupling off. Defaults to 1.0.
        draw (str): ``'cycle'`` or ``'released'``. Defaults to
            'cycle'.

    Raises:
        ValueError: For a ratio outside [0, 1] or an unknown draw.
    """

    def __init__(self, dirac_ratio: float = 1.0, draw: str = 'cycle') -> None:
        if not 0. <= dirac_ratio <= 1.:
            raise ValueError(f'dirac_ratio must be in [0, 1] (1 keeps every '
                             f'pair), got {dirac_ratio}')
        if draw not in DECOUPLING_DRAWS:
            raise ValueError(f'pair decoupling draw must be one of '
                             f'{DECOUPLING_DRAWS}, got {draw!r}')
        self.dirac_ratio, self.draw = float(dirac_ratio), draw

    def __call__(self, targets: List[Tensor]) -> List[Tensor]:
        """The targets of one step (one per level, equal batch sizes),
        permuted as the module docstring says; returned unchanged (the
        same list) when decoupling is off.

        With ``'cycle'``, sample ``b`` gets target ``perm[b]`` of the one
        :func:`decoupling_permutation`; with ``'released'``, row
        ``perm[i]`` of each level's result is row ``i`` of that level's
        targets, ``perm`` that level's :func:`released_permutation` (a
        gather with ``torch.argsort(perm)``, out of place).
        """
        if self.dirac_ratio >= 1.:
            return targets
        batch = targets[0].shape[0]
        if self.draw == 'released':
            out = []
            for t in targets:
                perm = released_permutation(batch, self.dirac_ratio)
                out.append(t.index_select(0, torch.argsort(perm).to(
                    t.device)))
            return out
        perm = decoupling_permutation(batch, self.dirac_ratio)
        return [t.index_select(0, perm.to(t.device)) for t in targets]

    def __repr__(self) -> str:
        return f'PairDecoupling(dirac_ratio={self.dirac_ratio}, ' \
               f'draw={self.draw!r})'
