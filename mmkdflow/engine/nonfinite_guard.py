"""Stop, or skip, a training step whose loss or gradients are NaN/Inf
before it reaches the weights: a guard on the optim wrapper.

The guard is a mixin over MMEngine's optim wrapper protocol, applied to each
wrapper it composes with: :class:`NonFiniteGuardOptimWrapper` (fp32),
:class:`NonFiniteGuardAutocastOptimWrapper` (bf16 autocast on CPU) and
:class:`NonFiniteGuardAmpOptimWrapper` (fp16 ``AmpOptimWrapper`` on CUDA).
The model's ``train_step`` stays MMEngine's: ``optim_context`` observes the
loss dict the model returns (for the error message), ``update_params``
checks the summed loss before the backward pass (one host synchronisation)
and, except under AMP, the gradients before the optimizer step.
"""
import logging
import weakref
from contextlib import contextmanager
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from torch import Tensor

from mmkdflow.registry import OPTIM_WRAPPERS
from .autocast_optim_wrapper import AutocastOptimWrapper

#: What a non-finite step does: stop the run, or skip the update.
NONFINITE_POLICIES = ('raise', 'skip')

#: The guarded optim wrapper of each wrapper type a config may name.
GUARDED_TYPES = {
    'OptimWrapper': 'mmkdflow.NonFiniteGuardOptimWrapper',
    'AutocastOptimWrapper': 'mmkdflow.NonFiniteGuardAutocastOptimWrapper',
    'AmpOptimWrapper': 'mmkdflow.NonFiniteGuardAmpOptimWrapper',
}


class NonFiniteLossError(FloatingPointError):
    """A loss or a gradient became NaN or Inf; nothing was updated."""


def _flatten(losses: Dict[str, Any]) -> Dict[str, Tensor]:
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


def nonfinite_losses(losses: Dict[str, Any]) -> List[str]:
    """Names of the losses (keys holding ``'loss'``, as MMEngine sums them)
    that hold a NaN or Inf; ``[]`` when all are finite.

    Returns:
        list[str]: The names of the non-finite losses.
    """
    return [name for name, value in _flatten(losses).items()
            if not bool(torch.isfinite(value.detach()).all())]


def describe_nonfinite(names: List[str], losses: Dict[str, Any],
                       epoch: int, iteration: int) -> str:
    """A report naming each bad loss, its distillation point (for the
    distiller's ``distill.<point>.*`` losses) and the step.

    Returns:
        str: The report.
    """
    flat = _flatten(losses)
    parts = []
    for name in names:
        value = flat[name].detach().float()
        shown = value.item() if value.numel() == 1 else 'non-finite entries'
        where = ''
        if name.startswith('distill.'):
            where = f" (distillation point {name.split('.')[1]!r})"
        elif name.startswith('student.'):
            where = " (the student's own task loss)"
        parts.append(f'{name}={shown}{where}')
    return (f'non-finite loss at epoch {epoch}, iteration {iteration}: '
            + '; '.join(parts))


def all_finite(tensors: List[Tensor]) -> bool:
    """Whether every entry of every tensor is finite: their largest
    absolute value (a NaN propagates, nothing overflows), one host
    synchronisation.

    Returns:
        bool: Whether every entry is finite.
    """
    if not tensors:
        return True
    get_total_norm = getattr(nn.utils, 'get_total_norm', None)
    if get_total_norm is not None:  # torch >= 2.6: grouped by device
        peak = get_total_norm(tensors, norm_type=float('inf'))
    else:
        peak = torch.stack([torch.linalg.vector_norm(t.detach(), float('inf'))
                            .to(tensors[0].device) for t in tensors]).max()
    return bool(torch.isfinite(peak))


def _step() -> str:
    hub = MessageHub.get_current_instance()
    return (f'epoch {hub.get_info("epoch", 0)}, iteration '
            f'{hub.get_info("iter", 0)}')


class _Observed:
    """What ``optim_context`` saw of one step: the model, and the loss
    dict its forward returned (for the names in the error message)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = weakref.ref(model)
        self.losses: Optional[Dict[str, Any]] = None

    def keep_losses(self, module: nn.Module, args: Any, output: Any) -> None:
        if isinstance(output, dict):
            self.losses = output


class NonFiniteGuardMixin:
    """The non-finite guard, for any MMEngine ``OptimWrapper`` subclass
    (put it first in the bases).

    Args:
        policy (str): ``'raise'`` (default): stop the run with
            :class:`NonFiniteLossError` naming the bad losses (and their
            distillation points) and the step, before any weight or checkpoint
            is touched. ``'skip'``: log a warning, drop the step's gradients
            and skip its update (single-process training only for losses: under
            DDP every rank would have to agree, so it raises instead). Without
            the guard (a plain wrapper) nothing is checked, which saves one
            host synchronisation per step. Defaults to 'raise'.
        *args, **kwargs: Arguments of the wrapper the mixin is applied to.

    Attributes:
        skipped_steps (int): Updates skipped so far (``policy='skip'``).
    """

    #: Check the gradients before the step (a GradScaler already skips
    #: steps with non-finite scaled gradients under AMP).
    checks_gradients = True

    def __init__(self, *args, policy: str = 'raise', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_guard(policy)

    def _init_guard(self, policy: str) -> None:
        """Set the guard's state (also for :func:`guard_optim_wrapper`)."""
        if policy not in NONFINITE_POLICIES:
            raise ValueError(f'policy must be one of {NONFINITE_POLICIES}, '
                             f'got {policy!r} (leave the guard out for no '
                             f'check)')
        self.policy = policy
        self.skipped_steps = 0
        self._observed: Optional[_Observed] = None

    @contextmanager
    def optim_context(self, model: nn.Module):
        """The wrapped ``optim_context``, watching the model's output."""
        observed = _Observed(model)
        self._observed = observed
        handle = model.register_forward_hook(observed.keep_losses)
        try:
            with super().optim_context(model):
                yield
        finally:
            handle.remove()

    def update_params(self, loss: Tensor,
                      step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        """MMEngine's update (scale, backward, step, zero) unless the loss
        or, before the step, a gradient is not finite."""
        observed, self._observed = self._observed, None
        zero_kwargs = zero_kwargs or {}
        if not bool(torch.isfinite(loss.detach()).all()):
            self.zero_grad(**zero_kwargs)
            self._refuse_loss(loss, observed)
            return
        self.backward(self.scale_loss(loss))
        if not self.should_update():
            return
        if self.checks_gradients and not self._gradients_finite(observed):
            return
        self.step(**(step_kwargs or {}))
        self.zero_grad(**zero_kwargs)

    def _refuse_loss(self, loss: Tensor, observed: Optional[_Observed]
                     ) -> None:
        losses = observed.losses if observed is not None and \
            observed.losses is not None else dict(loss=loss)
        names = nonfinite_losses(losses) or ['loss']
        if 'loss' in names and 'loss' not in losses:
            losses = dict(losses, loss=loss)
        hub = MessageHub.get_current_instance()
        report = describe_nonfinite(names, losses, hub.get_info('epoch', 0),
                                    hub.get_info('iter', 0))
        distributed = torch.distributed.is_available() and \
            torch.distributed.is_initialized() and \
            torch.distributed.get_world_size() > 1
        if self.policy == 'raise' or distributed:
            why = ("; policy='skip' works only in single-process training"
                   if self.policy == 'skip' else '')
            raise NonFiniteLossError(
                f'{report}. The run stops before updating any weight, so no '
                f'checkpoint holds NaN weights{why}. Lower the learning rate '
                f"or that loss's weight, or set SafeTrainingHook("
                f"nonfinite='skip') in custom_hooks (policy='skip' on the "
                f'optim wrapper) to skip such steps')
        self._skipped(report)

    def _gradients_finite(self, observed: Optional[_Observed]) -> bool:
        params = [p for group in self.optimizer.param_groups
                  for p in group['params'] if p.grad is not None]
        if all_finite([p.grad for p in params]):
            return True
        bad = {id(p) for p in params if not all_finite([p.grad])}
        self.zero_grad()
        model = observed.model() if observed is not None else None
        model = getattr(model, 'module', model)  # DDP
        names = [n for n, p in model.named_parameters() if id(p) in bad] \
            if model is not None else []
        report = (f'non-finite gradients at {_step()} although every loss '
                  f'is finite, in {len(bad)} parameters (first: '
                  f'{", ".join(names[:3]) or "unnamed"})')
        if self.policy == 'raise':
            raise NonFiniteLossError(
                f'{report}. The run stops before updating any weight. Under '
                f'bf16 autocast on CPU this is a known oneDNN kernel issue '
                f'with 1x1 feature maps: use larger inputs or fp32; or set '
                f"policy='skip' on the optim wrapper to skip such steps")
        self._skipped(report)
        return False

    def _skipped(self, report: str) -> None:
        self.skipped_steps += 1
        print_log(f'{report}; skipping this update ({self.skipped_steps} '
                  f'skipped so far)', 'current', level=logging.WARNING)


@OPTIM_WRAPPERS.register_module()
class NonFiniteGuardOptimWrapper(NonFiniteGuardMixin, OptimWrapper):
    """MMEngine's ``OptimWrapper`` with the non-finite guard
    (:class:`NonFiniteGuardMixin`)."""


@OPTIM_WRAPPERS.register_module()
class NonFiniteGuardAutocastOptimWrapper(NonFiniteGuardMixin,
                                         AutocastOptimWrapper):
    """:class:`AutocastOptimWrapper` (bf16 autocast, e.g. on CPU) with the
    non-finite guard (:class:`NonFiniteGuardMixin`)."""


@OPTIM_WRAPPERS.register_module()
class NonFiniteGuardAmpOptimWrapper(NonFiniteGuardMixin, AmpOptimWrapper):
    """MMEngine's ``AmpOptimWrapper`` (fp16 with a loss scaler, CUDA) with
    the loss check of :class:`NonFiniteGuardMixin`; the gradients are left
    to the loss scaler, which skips steps with non-finite gradients."""

    checks_gradients = False


def guard_optim_wrapper(wrapper, policy: str) -> List[str]:
    """Give a built optim wrapper the non-finite guard, in place.

    An ``OptimWrapper``, ``AmpOptimWrapper`` or ``AutocastOptimWrapper``
    becomes its guarded class of :data:`GUARDED_TYPES`, keeping its
    optimizer, loss scaler and settings (the parameter schedulers stay
    bound to the same optimizer). Each wrapper of an ``OptimWrapperDict``
    is guarded. A wrapper that is guarded already keeps its own policy.

    Args:
        wrapper (OptimWrapper | OptimWrapperDict): The runner's wrapper.
        policy (str): ``'raise'`` or ``'skip'``.

    Returns:
        list[str]: The names of the wrapper classes that were guarded.

    Raises:
        ValueError: A wrapper of another class, which the guard cannot be
            applied to; the message names the setting that turns it off.
    """
    from mmengine.optim import OptimWrapperDict
    if isinstance(wrapper, OptimWrapperDict):
        return [name for inner in wrapper.optim_wrappers.values()
                for name in guard_optim_wrapper(inner, policy)]
    if isinstance(wrapper, NonFiniteGuardMixin):
        return []
    guarded = {OptimWrapper: NonFiniteGuardOptimWrapper,
               AutocastOptimWrapper: NonFiniteGuardAutocastOptimWrapper,
               AmpOptimWrapper: NonFiniteGuardAmpOptimWrapper}
    cls = guarded.get(type(wrapper))
    if cls is None:
        raise ValueError(
            f'the non-finite guard applies to {", ".join(GUARDED_TYPES)}, '
            f'not to the optim wrapper {type(wrapper).__name__}; set '
            f"SafeTrainingHook(nonfinite='off') in custom_hooks to train "
            f'without the check')
    name = type(wrapper).__name__
    wrapper.__class__ = cls
    wrapper._init_guard(policy)
    return [name]
