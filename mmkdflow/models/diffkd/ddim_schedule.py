"""The DDPM noise schedule and deterministic DDIM sampling used by DiffKD."""
import math
from typing import (Callable, Dict, List, Sequence, Tuple,
                    Union)

import torch
import torch.nn as nn
from torch import Tensor

from ..utils import fp32_region

Timestep = Union[int, Tensor]


class DDIMSchedule(nn.Module):
    r"""Linear-beta DDPM schedule with deterministic DDIM steps (eta = 0).

    With ``beta_t`` linear from ``beta_start`` to ``beta_end`` over
    ``num_train_timesteps`` steps, ``alpha_bar_t = prod_{i<=t} (1 - beta_i)``
    (computed in float64, stored as float32).

    * Forward noising, closed form of q(z_t | z_0) (paper Eq. (2), (3))::

          z_t = sqrt(alpha_bar_t) z_0 + sqrt(1 - alpha_bar_t) eps

    * The DDIM step with epsilon prediction, eta = 0, no clipping (the
      deterministic reverse process that replaces Eq. (5)), which
      :meth:`ddim_coefficients` turns into one multiply-add::

          x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_bar_t)
          x_prev  = sqrt(alpha_bar_prev) x0_pred
                    + sqrt(1 - alpha_bar_prev) eps_pred

      with ``alpha_bar_prev = 1`` for ``t_prev < 0`` (the last step), which
      returns ``x0_pred`` itself.

    ``alpha_bar`` is a persistent **float32** buffer: it follows the module
    across devices and through ``state_dict`` round trips, but dtype casts
    (``.half()``, ``.to(torch.bfloat16)``) leave it in float32 (see
    :meth:`_apply`). In fp16, ``alpha_bar_0 = 0.9999`` rounds to 1 and the
    last step would divide by a wrongly rounded value. All arithmetic runs in
    float32 with autocast off; results come back in the input's dtype.

    Args:
        num_train_timesteps (int): Number of diffusion steps ``T``. Defaults to
            1000.
        beta_start (float): First beta. Defaults to 0.0001.
        beta_end (float): Last beta. Defaults to 0.02.
    """

    def __init__(self,
                 num_train_timesteps: int = 1000,
                 beta_start: float = 1e-4,
                 beta_end: float = 0.02) -> None:
        super().__init__()
        if num_train_timesteps < 1:
            raise ValueError(f'num_train_timesteps must be >= 1, got '
                             f'{num_train_timesteps}')
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(f'need 0 < beta_start <= beta_end < 1, got '
                             f'{beta_start}, {beta_end}')
        self.num_train_timesteps = int(num_train_timesteps)
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps,
                               dtype=torch.float64)
        alpha_bar = torch.cumprod(1.0 - betas, dim=0).to(torch.float32)
        self.register_buffer('alpha_bar', alpha_bar, persistent=True)
        self._coef_cache: Dict[Tuple, List[Tuple[float, float]]] = {}

    def _apply(self, fn: Callable, recurse: bool = True) -> 'DDIMSchedule':
        """Apply ``fn`` (``.to``, ``.half``, ``.cuda`` ...) but keep
        ``alpha_bar`` in float32: only its device follows ``fn``."""
        kept = self._buffers['alpha_bar']
        super()._apply(fn, recurse)
        moved = self._buffers['alpha_bar']
        if moved.dtype != torch.float32:
            # restore from the float32 original, not from the rounded copy
            self._buffers['alpha_bar'] = kept.to(device=moved.device,
                                                 dtype=torch.float32)
        return self

    # ------------------------------------------------------------ helpers
    def _alpha_bar_at(self, t: Timestep, like: Tensor,
                      check: bool = True) -> Tensor:
        """``alpha_bar_t`` as float32, broadcastable to ``like``; negative
        timesteps give 1 (the clean end of the chain). ``check=False`` skips
        the range check, which reads the timesteps on the host (a device
        sync on GPUs), for timesteps valid by construction."""
        table = self.alpha_bar.to(device=like.device, dtype=torch.float32)
        t = torch.as_tensor(t, device=like.device).long()
        if t.numel() > 1 and t.shape != (like.shape[0], ):
            raise ValueError(f'timesteps must be a scalar or one per sample '
                             f'({like.shape[0]}), got {tuple(t.shape)}')
        if check and (t >= self.num_train_timesteps).any():
            raise ValueError(f'timestep out of range [0, '
                             f'{self.num_train_timesteps - 1}]: {t.tolist()}')
        value = torch.where(t >= 0, table[t.clamp(min=0)],
                            torch.ones_like(t, dtype=torch.float32))
        if value.dim() == 0:
            return value
        return value.reshape((-1, ) + (1, ) * (like.dim() - 1))

    # --------------------------------------------------------------- math
    def add_noise(self, x0: Tensor, eps: Tensor, t: Timestep,
                  check: bool = True) -> Tensor:
        """Forward noising ``z_t = sqrt(ab_t) z_0 + sqrt(1 - ab_t) eps``
        (Eq. (3)).

        Args:
            x0 (Tensor): Clean sample ``(B, ...)``.
            eps (Tensor): Gaussian noise of the same shape.
            t (int | Tensor): One timestep (int) or one per sample ``(B,)``, in
                [0, T-1].
            check (bool): Validate the range of ``t`` (a host read of ``t``;
                pass ``False`` for timesteps drawn in range). Defaults to True.

        Returns:
            ``z_t`` in ``x0``'s dtype.
        """
        with fp32_region(x0.device):
            ab = self._alpha_bar_at(t, x0, check)
            out = ab.sqrt() * x0.float() + (1 - ab).sqrt() * eps.float()
        return out.to(x0.dtype)

    def ddim_coefficients(self, timesteps: Sequence[int]
                          ) -> List[Tuple[float, float]]:
        r"""The deterministic DDIM chain over ``timesteps`` as one
        multiply-add per step.

        Substituting ``x0_pred`` into the DDIM step (class docstring) gives,
        with
        ``ab_prev = 1`` after the last timestep (which returns ``x0_pred``)::

            x_prev = c_x * x_t + c_eps * eps_pred
            c_x    = sqrt(ab_prev / ab_t)
            c_eps  = sqrt(1 - ab_prev) - sqrt(ab_prev * (1 - ab_t) / ab_t)

        The coefficients are Python floats computed in float64 from the
        float32 buffer, so a chain step is two fused elementwise kernels
        with no schedule lookups and no host syncs. They are cached until
        the buffer changes (``load_state_dict`` bumps its version, ``.to()``
        moves it).

        Args:
            timesteps (Sequence[int]): The chain, largest first (see
                :meth:`inference_timesteps`), each in [0, T-1].

        Returns:
            One ``(c_x, c_eps)`` pair per timestep.

        Raises:
            ValueError: On a timestep outside [0, T-1].
        """
        steps = tuple(int(t) for t in timesteps)
        table = self.alpha_bar
        key = (steps, table._version, table.data_ptr(), str(table.device))
        cached = self._coef_cache.get(key)
        if cached is not None:
            return cached
        if any(not 0 <= t < self.num_train_timesteps for t in steps):
            raise ValueError(f'timesteps must lie in [0, '
                             f'{self.num_train_timesteps - 1}], got '
                             f'{list(steps)}')
        values = table.detach().to('cpu', torch.float64)[list(steps)]
        abs_ = values.tolist() + [1.0]
        coefs = []
        for ab, ab_prev in zip(abs_, abs_[1:]):
            c_x = math.sqrt(ab_prev / ab)
            c_eps = math.sqrt(1.0 - ab_prev) - math.sqrt(
                ab_prev * (1.0 - ab) / ab)
            coefs.append((c_x, c_eps))
        self._coef_cache = {key: coefs}
        return coefs

    def inference_timesteps(self, num_inference_steps: int = 5,
                            start_timestep: int = 400) -> List[int]:
        """The timesteps of the reverse process, largest first.

        Rule: ``num_inference_steps`` timesteps evenly spaced from
        ``start_timestep`` down to 0 inclusive, i.e. spacing
        ``start_timestep / (num_inference_steps - 1)`` (rounded to integers).
        The network is evaluated once per timestep; the step from timestep 0
        (or the only one, for a single step) returns ``x0_pred``.

        The defaults give ``[400, 300, 200, 100, 0]``: the second half of the
        10-step DDIM grid over 1000 training steps ("leading" spacing,
        900, 800, ..., 0), as in the released DiffKD code. The paper's
        appendix starts at 500: ``start_timestep=500`` gives
        ``[500, 375, 250, 125, 0]``.

        Returns:
            list[int]: The timesteps, largest first.

        Raises:
            ValueError: On a start outside [0, T-1], fewer than one step, or
                more steps than distinct timesteps in [0, start].
        """
        n, start = int(num_inference_steps), int(start_timestep)
        if not 0 <= start < self.num_train_timesteps:
            raise ValueError(f'start_timestep must lie in [0, '
                             f'{self.num_train_timesteps - 1}], got {start}')
        if n < 1 or n > start + 1:
            raise ValueError(f'num_inference_steps must lie in [1, '
                             f'start_timestep + 1 = {start + 1}], got {n}')
        if n == 1:
            return [start]
        return [int(round(start - i * start / (n - 1))) for i in range(n)]

    def extra_repr(self) -> str:
        return f'num_train_timesteps={self.num_train_timesteps}'
