"""Detect non-finite distillation losses before they reach the weights."""
from typing import Dict, List

import torch
from torch import Tensor

NONFINITE_POLICIES = ('raise', 'skip', 'off')


class NonFiniteLossError(FloatingPointError):
    """A loss of the distiller became NaN or Inf; nothing was updated."""


def _flatten(losses: Dict[str, object]) -> Dict[str, Tensor]:
    flat = {}
    for name, value in losses.items():
        if 'loss' not in name:
            continue
        if isinstance(value, Tensor):
            flat[name] = value
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, Tensor):
                    flat[f'{name}[{i}]'] = item
    return flat


def nonfinite_losses(losses: Dict[str, object]) -> List[str]:
    """Names of the losses that hold a NaN or Inf (``[]`` when all are
    finite).

    One device-to-host synchronisation for the whole dict; names are
    collected only in the rare non-finite case.
    """
    flat = _flatten(losses)
    if not flat:
        return []
    sums = torch.stack([v.detach().float().sum() for v in flat.values()])
    if bool(torch.isfinite(sums).all()):
        return []
    return [name for name, value in flat.items()
            if not bool(torch.isfinite(value.detach()).all())]


def describe_nonfinite(names: List[str], losses: Dict[str, object],
                       epoch: int, iteration: int) -> str:
    """A report naming each bad loss, its distillation point and the step."""
    flat = _flatten(losses)
    parts = []
    for name in names:
        value = flat[name].detach().float()
        shown = value.item() if value.numel() == 1 else 'non-finite entries'
        point = name.split('.')[1] if name.startswith('distill.') else None
        where = f' (distillation point {point!r})' if point else \
            " (the student's own task loss)"
        parts.append(f'{name}={shown}{where}')
    return (f'non-finite loss at epoch {epoch}, iteration {iteration}: '
            + '; '.join(parts))
