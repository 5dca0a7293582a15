r"""Interpolant schedules of FM-KT: rectified flow, VP-ODE and VE-ODE.

FM-KT (Shao et al., 2024) joins the teacher representation :math:`X_T`
(at :math:`t = 0`) and the student representation (at :math:`t = 1`) with a
stochastic interpolant

.. math::

    x_t = \alpha_t X_T + \sigma_t \epsilon, \qquad
    \dot x_t = \alpha'_t X_T + \sigma'_t \epsilon,

where :math:`\epsilon` plays the role of the "noise" (for rectified flow it
is the student :math:`Z` itself). A schedule gives :math:`\alpha_t,
\sigma_t` and their time derivatives; the sampler reads the meta-encoder's
output as the velocity :math:`v \approx \dot x_t` and recovers a teacher
prediction from it with :meth:`Schedule.teacher_prediction`.

Schedules are small stateless objects, looked up by name in
:data:`SCHEDULES` (a plain dict: they are not ``nn.Module`` s and have no
business in the shared model registry) through :func:`build_schedule`.
"""
import math
from abc import ABC, abstractmethod
from typing import Dict, Optional, Type, Union

import torch
from torch import Tensor


class Schedule(ABC):
    """Base class: :math:`\\alpha_t, \\sigma_t` and their derivatives.

    The coefficient methods take a tensor ``t`` (any shape) and return a
    tensor of the same shape; subclasses implement these four.
    """

    name: str = ''

    @abstractmethod
    def alpha(self, t: Tensor) -> Tensor:
        """Weight :math:`\\alpha_t` of the teacher in :math:`x_t`."""
        raise NotImplementedError

    @abstractmethod
    def sigma(self, t: Tensor) -> Tensor:
        """Weight :math:`\\sigma_t` of the noise/student in :math:`x_t`."""
        raise NotImplementedError

    @abstractmethod
    def d_alpha(self, t: Tensor) -> Tensor:
        """Time derivative :math:`\\alpha'_t`."""
        raise NotImplementedError

    @abstractmethod
    def d_sigma(self, t: Tensor) -> Tensor:
        """Time derivative :math:`\\sigma'_t`."""
        raise NotImplementedError

    def teacher_prediction(self, x_s: Tensor, v: Tensor, t: Union[float,
                           Tensor], s: Optional[Union[float, Tensor]] = None
                           ) -> Tensor:
        r"""Teacher prediction from a point of the path and a velocity.

        **[ext]** (the paper's exact parameterisation is not available; this
        is our derivation.) Suppose ``x_s`` lies on the interpolant at time
        ``s``, :math:`x_s = \alpha_s X_T + \sigma_s \epsilon`, and ``v`` is the
        velocity of the same path at time ``t``, :math:`v = \alpha'_t X_T +
        \sigma'_t \epsilon`. Eliminating :math:`\epsilon` gives

        .. math::

            \hat X = \frac{\sigma'_t\, x_s - \sigma_s\, v}
                          {\alpha_s \sigma'_t - \alpha'_t \sigma_s}.

        With ``s = t`` (the default) this is the "state-anchored" formula
        :math:`(\sigma'_t x_t - \sigma_t v) / (\alpha_t \sigma'_t - \alpha'_t
        \sigma_t)`; for rectified flow it reads :math:`x_t - t v`.
        With ``s = 1`` and ``x_s = Z`` (the sampler's start, which is exact:
        it carries no integration error) it is "start-anchored"; for
        rectified flow (:math:`\alpha_1 = 0, \sigma_1 = 1, \sigma' = 1,
        \alpha' = -1`) it reads :math:`Z - v`, the released FM-KT behaviour
        ``Xhat_i = Z - v_i``. Both are exact whenever ``v`` is the exact
        velocity of the path through ``x_s``. The denominator is positive
        for all three schedules (:math:`\alpha \ge 0` decreasing or constant,
        :math:`\sigma > 0` increasing).

        Conditioning: for VP the start-anchored inversion divides by
        :math:`\alpha_1 \sigma'_t - \alpha'_t \sigma_1`, small against
        :math:`\sigma'_t` near t = 0 (:math:`\alpha_1 \approx 0.007`), so the
        network must output large, nearly cancelling velocities there; the
        state-anchored one is well conditioned near t = 0.

        Args:
            x_s (Tensor): Anchor point of the path, at time ``s``.
            v (Tensor): Velocity read at time ``t``.
            t (float | Tensor): Time of the velocity (a scalar: one time per
                sampler step).
            s (float | Tensor, optional): Time of the anchor (a scalar);
                ``None`` means ``s = t``. Defaults to None.

        Returns:
            Tensor: The prediction of the clean point at t = 0.
        """
        t = torch.as_tensor(t, dtype=torch.float64)
        s = t if s is None else torch.as_tensor(s, dtype=torch.float64)
        a_s, s_s = self.alpha(s), self.sigma(s)
        da_t, ds_t = self.d_alpha(t), self.d_sigma(t)
        denom = a_s * ds_t - da_t * s_s
        return (float(ds_t) * x_s - float(s_s) * v) / float(denom)

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'


class RectifiedSchedule(Schedule):
    r"""Rectified flow: :math:`\alpha_t = 1 - t`, :math:`\sigma_t = t`.

    The path is the straight line from :math:`X_T` (t = 0) to the student
    :math:`Z` (t = 1) with the constant velocity :math:`v = Z - X_T`.
    """

    name = 'rectified'

    def alpha(self, t: Tensor) -> Tensor:
        return 1 - t

    def sigma(self, t: Tensor) -> Tensor:
        return t.clone()

    def d_alpha(self, t: Tensor) -> Tensor:
        return torch.full_like(t, -1.)

    def d_sigma(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)


class VPSchedule(Schedule):
    r"""Variance-preserving ODE (Song et al., 2021) with a linear
    :math:`\beta(t) = \beta_{min} + t(\beta_{max} - \beta_{min})`:

    .. math::

        \alpha_t = \exp\big(-\tfrac12 \textstyle\int_0^t \beta\big)
                 = \exp\big(-\tfrac12 (\beta_{min} t
                   + \tfrac12 (\beta_{max} - \beta_{min}) t^2)\big),\quad
        \sigma_t = \sqrt{1 - \alpha_t^2},

    :math:`\alpha'_t = -\tfrac12 \beta(t) \alpha_t`,
    :math:`\sigma'_t = -\alpha_t \alpha'_t / \sigma_t`. :math:`\sigma'` is
    singular at t = 0, which the sampler never evaluates (t_i >= 1/N).

    Args:
        beta_min (float): :math:`\beta(0)`. Defaults to 0.1.
        beta_max (float): :math:`\beta(1)`. Defaults to 20.0.
    """

    name = 'vp'

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.) -> None:
        if not 0 < beta_min <= beta_max:
            raise ValueError(f'need 0 < beta_min <= beta_max, got '
                             f'{beta_min}, {beta_max}')
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def beta(self, t: Tensor) -> Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def alpha(self, t: Tensor) -> Tensor:
        integral = self.beta_min * t + 0.5 * (
            self.beta_max - self.beta_min) * t**2
        return torch.exp(-0.5 * integral)

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sqrt((1 - self.alpha(t)**2).clamp_min(0))

    def d_alpha(self, t: Tensor) -> Tensor:
        return -0.5 * self.beta(t) * self.alpha(t)

    def d_sigma(self, t: Tensor) -> Tensor:
        return -self.alpha(t) * self.d_alpha(t) / self.sigma(t).clamp_min(
            1e-12)

    def __repr__(self) -> str:
        return f'VPSchedule(beta_min={self.beta_min}, ' \
               f'beta_max={self.beta_max})'


class VESchedule(Schedule):
    r"""Variance-exploding ODE (Song et al., 2021):
    :math:`\alpha_t = 1`, :math:`\sigma_t = \sigma_{min}
    (\sigma_{max}/\sigma_{min})^t`, so :math:`\alpha' = 0` and
    :math:`\sigma'_t = \sigma_t \ln(\sigma_{max}/\sigma_{min})`.

    The defaults are Song et al.'s CIFAR-10 values. The path ends at
    :math:`x_0 = X_T + \sigma_{min}\epsilon`, not exactly at :math:`X_T`.

    Args:
        sigma_min (float): :math:`\sigma_0`. Defaults to 0.01.
        sigma_max (float): :math:`\sigma_1`. Defaults to 50.0.
    """

    name = 've'

    def __init__(self, sigma_min: float = 0.01,
                 sigma_max: float = 50.) -> None:
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f'need 0 < sigma_min < sigma_max, got '
                             f'{sigma_min}, {sigma_max}')
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.log_ratio = math.log(self.sigma_max / self.sigma_min)

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min * torch.exp(t * self.log_ratio)

    def d_alpha(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def d_sigma(self, t: Tensor) -> Tensor:
        return self.sigma(t) * self.log_ratio

    def __repr__(self) -> str:
        return f'VESchedule(sigma_min={self.sigma_min}, ' \
               f'sigma_max={self.sigma_max})'


#: Schedules by name (``build_schedule('vp', beta_max=20.)``).
SCHEDULES: Dict[str, Type[Schedule]] = {
    'rectified': RectifiedSchedule,
    'vp': VPSchedule,
    've': VESchedule,
}


def build_schedule(schedule: Union[str, dict, Schedule] = 'rectified',
                   **kwargs) -> Schedule:
    """Build a schedule from a name (+ kwargs), a ``dict(type=name, ...)``
    or return a :class:`Schedule` instance unchanged.

    Returns:
        Schedule: The schedule.

    Raises:
        KeyError: For an unknown name, listing the known ones.
    """
    if isinstance(schedule, Schedule):
        return schedule
    if isinstance(schedule, dict):
        kwargs = {**{k: v for k, v in schedule.items() if k != 'type'},
                  **kwargs}
        schedule = schedule.get('type', 'rectified')
    if schedule not in SCHEDULES:
        raise KeyError(f'unknown FM-KT schedule {schedule!r}; known: '
                       f'{", ".join(SCHEDULES)}')
    return SCHEDULES[schedule](**kwargs)
