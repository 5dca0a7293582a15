"""Detect non-finite distillation losses before they reach the weights."""
from typing import Dict, List

import logging

import torch
from mmengine.logging import MessageHub, print_log
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


def nonfinite_gradients(module: torch.nn.Module) -> List[str]:
    """Names of the parameters whose gradient holds a NaN or Inf.

    A finite loss can still give non-finite gradients (e.g. a kernel bug
    under bf16 autocast); checked before the optimizer step so that they
    never reach the weights. One host synchronisation in the normal case.
    """
    named = [(n, p.grad) for n, p in module.named_parameters()
             if p.grad is not None]
    if not named:
        return []
    norms = torch._foreach_norm([g for _, g in named])
    if bool(torch.isfinite(torch.stack(norms)).all()):
        return []
    return [n for (n, _), norm in zip(named, norms)
            if not bool(torch.isfinite(norm))]


def _checks_gradients(optim_wrapper) -> bool:
    """Whether the gradient check applies: a plain (or autocast) optim
    wrapper. ``AmpOptimWrapper``'s GradScaler already skips steps with
    non-finite (scaled) gradients; wrapper dicts step each part."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    return isinstance(optim_wrapper, OptimWrapper) and \
        not isinstance(optim_wrapper, AmpOptimWrapper)


class NonFiniteGuardMixin:
    """``train_step`` of a distiller with the ``nonfinite`` policy.

    The host class sets ``nonfinite`` (one of :data:`NONFINITE_POLICIES`),
    ``skipped_steps``, ``_skip_update`` and ``_context`` (its
    ``DistillContext``), and calls :meth:`_guard_losses` on its loss dict.
    """

    def _guard_losses(self, losses: Dict[str, Tensor]) -> None:
        bad = nonfinite_losses(losses)
        if not bad:
            return
        report = describe_nonfinite(bad, losses, self._context.epoch,
                                    self._context.iter)
        distributed = torch.distributed.is_available() and \
            torch.distributed.is_initialized() and \
            torch.distributed.get_world_size() > 1
        if self.nonfinite == 'raise' or distributed:
            why = ("; nonfinite='skip' works only in single-process "
                   'training') if self.nonfinite == 'skip' else ''
            raise NonFiniteLossError(
                f'{report}. The run stops before updating any weight, so no '
                f'checkpoint holds NaN weights{why}. Lower the learning rate '
                f"or that loss's weight, or set nonfinite='skip' on the "
                f'distiller to skip such steps')
        self._skip_update = True
        self.skipped_steps += 1
        print_log(f'{report}; skipping this update ({self.skipped_steps} '
                  f'skipped so far)', 'current', level=logging.WARNING)

    def train_step(self, data, optim_wrapper) -> Dict[str, Tensor]:
        """MMEngine's training step, minus the update when ``nonfinite=
        'skip'`` flagged this step's losses."""
        self._skip_update = False
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = self._run_forward(data, mode='loss')
        parsed_losses, log_vars = self.parse_losses(losses)
        if self._skip_update:
            optim_wrapper.zero_grad()
            self._skip_update = False
        elif self.nonfinite == 'off' or not _checks_gradients(optim_wrapper):
            optim_wrapper.update_params(parsed_losses)
        else:
            optim_wrapper.backward(optim_wrapper.scale_loss(parsed_losses))
            if optim_wrapper.should_update():
                self._guard_gradients(optim_wrapper)
        return log_vars

    def _guard_gradients(self, optim_wrapper) -> None:
        """Step only if every gradient is finite (see ``nonfinite``)."""
        bad = nonfinite_gradients(self)
        if not bad:
            optim_wrapper.step()
            optim_wrapper.zero_grad()
            return
        hub = MessageHub.get_current_instance()
        report = (f'non-finite gradients at epoch {hub.get_info("epoch", 0)}'
                  f', iteration {hub.get_info("iter", 0)} although every '
                  f'loss is finite, in {len(bad)} parameters (first: '
                  f'{", ".join(bad[:3])})')
        optim_wrapper.zero_grad()
        if self.nonfinite == 'raise':
            raise NonFiniteLossError(
                f'{report}. The run stops before updating any weight. Under '
                f'bf16 autocast on CPU this is a known oneDNN kernel issue '
                f'with 1x1 feature maps: use larger inputs or fp32; or set '
                f"nonfinite='skip' on the distiller to skip such steps")
        self.skipped_steps += 1
        print_log(f'{report}; skipping this update ({self.skipped_steps} '
                  f'skipped so far)', 'current', level=logging.WARNING)
