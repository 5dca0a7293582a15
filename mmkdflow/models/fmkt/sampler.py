r"""The serial N-step Euler sampler of FM-KT (steps (2)-(5) of
:mod:`mmkdflow.models.fmkt`).

Given the student representation :math:`Z`, a velocity function
:math:`v(x, t)` (:mod:`~mmkdflow.models.fmkt.velocity`) and a schedule, the
sampler runs

.. code-block:: text

    x = Z
    for i = N, N-1, .., 1:                  # t_i = i / N (t = 0 never used)
        v_i    = v(x, t_i)                  # E only sees its own Euler state
        Xhat_i = teacher_prediction(v_i)    # one prediction of X_T per step
        x      = x - v_i / N                # Euler step of dx/dt = v, dt=-1/N

and returns every :math:`\hat X_i`, their mean and the end point. Nothing is
detached: all N steps carry gradients into E, the time embedding and Z.
There is no teacher input anywhere; the teacher is only a loss target
("serial" training, which forbids feeding :math:`\alpha_t X_T + \sigma_t Z`
to E: that is the "cheating" of textbook flow matching, impossible at test
time where :math:`X_T` does not exist).

Teacher prediction (see :meth:`Schedule.teacher_prediction`):

* ``anchor='start'`` (default): :math:`\hat X_i = (\sigma'_{t_i} Z -
  \sigma_1 v_i) / (\alpha_1 \sigma'_{t_i} - \alpha'_{t_i} \sigma_1)`,
  anchored at the exact start :math:`Z = x_1`. For rectified flow this is
  exactly the released ``Xhat_i = Z - v_i``, and then the implicit-ensemble
  identity holds: :math:`x_{end} = Z - \frac1N \sum_i v_i = \frac1N \sum_i
  \hat X_i`.
* ``anchor='state'``: anchored at the current Euler state :math:`x`,
  :math:`\hat X_i = (\sigma'_t x - \sigma_t v_i) / (\alpha_t \sigma'_t -
  \alpha'_t \sigma_t)` (for rectified flow :math:`x - t_i v_i`).

Both are exact for the exact velocity of the path through their anchor; the
start-anchored one never accumulates Euler error into the predictions.

For VP and VE the start :math:`x = Z` stands for :math:`x_1 = \alpha_1 X_T
+ \sigma_1 \epsilon`: the implied noise is :math:`\epsilon = (Z - \alpha_1
X_T) / \sigma_1`, and the exact ODE ends at :math:`\alpha_0 X_T + \sigma_0
\epsilon` (:math:`= X_T` for VP; :math:`X_T + \sigma_{min}\epsilon` for VE).
"""
from dataclasses import dataclass
from typing import Callable, List, Union

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint as _checkpoint

from .schedules import Schedule, build_schedule

VelocityFn = Callable[[Tensor, float], Tensor]
ANCHORS = ('start', 'state')


def check_anchor(anchor: str) -> str:
    """``anchor`` if it is one of :data:`ANCHORS`, else a ``ValueError``.

    Returns:
        str: ``anchor`` unchanged.
    """
    if anchor not in ANCHORS:
        raise ValueError(f'anchor must be one of {ANCHORS}, got {anchor!r}')
    return anchor


def checkpointed(velocity_fn: VelocityFn) -> VelocityFn:
    """``velocity_fn`` whose activations are recomputed in the backward
    pass (non-reentrant :func:`torch.utils.checkpoint.checkpoint`, RNG state
    preserved) when gradients are recorded; a plain call otherwise.

    A step then keeps only its Euler state, velocity and prediction alive
    (a few ``C x H x W`` maps) instead of every intermediate of E, at the
    price of one more forward of E per step in the backward pass.

    Returns:
        VelocityFn: The wrapped velocity function.
    """

    def run(x: Tensor, t: float) -> Tensor:
        if not torch.is_grad_enabled():
            return velocity_fn(x, t)
        return _checkpoint(velocity_fn, x, t, use_reentrant=False)

    return run


@dataclass
class FlowTrajectory:
    """What one run of the sampler produced.

    Attributes:
        predictions (list[Tensor]): :math:`\\hat X_i` in evaluation order (t =
            1 first).
        velocities (list[Tensor]): :math:`v_i` in the same order.
        times (list[float]): :math:`t_i = i / N` in the same order.
        mean (Tensor): :math:`\\frac1N \\sum_i \\hat X_i` (the refined student
            output).
        end (Tensor): The Euler end point :math:`x` at t = 0.
    """

    predictions: List[Tensor]
    velocities: List[Tensor]
    times: List[float]
    mean: Tensor
    end: Tensor


def euler_sample(velocity_fn: VelocityFn, z: Tensor, num_steps: int,
                 schedule: Union[str, Schedule] = 'rectified',
                 anchor: str = 'start', *,
                 checkpoint: bool = False) -> FlowTrajectory:
    """Run the serial N-step Euler sampler from the student ``z``.

    Args:
        velocity_fn (callable): ``(x, t) -> v``; called N times, with ``x``
            always the sampler's own Euler state (never anything built from a
            teacher).
        z (Tensor): Student representation, the start state at t = 1.
        num_steps (int): N >= 1.
        schedule (str | Schedule): A :class:`Schedule` or its name. Defaults to
            'rectified'.
        anchor (str): ``'start'`` or ``'state'``, see the module docstring.
            Defaults to 'start'.
        checkpoint (bool): Checkpoint every velocity call (see
            :func:`checkpointed`). Leave it off when ``velocity_fn`` calls a
            ``VelocityField(checkpoint=True)``, which checkpoints itself.
            Defaults to False.

    Returns:
        A :class:`FlowTrajectory`.
    """
    if int(num_steps) < 1:
        raise ValueError(f'num_steps must be >= 1, got {num_steps}')
    check_anchor(anchor)
    schedule = build_schedule(schedule)
    if checkpoint:
        velocity_fn = checkpointed(velocity_fn)
    n = int(num_steps)
    x = z
    predictions, velocities, times = [], [], []
    for i in range(n, 0, -1):
        t = i / n
        v = velocity_fn(x, t)
        if anchor == 'start':
            pred = schedule.teacher_prediction(z, v, t, s=1.0)
        else:
            pred = schedule.teacher_prediction(x, v, t)
        predictions.append(pred)
        velocities.append(v)
        times.append(t)
        x = x - v / n
    mean = sum(predictions[1:], predictions[0]) / n
    return FlowTrajectory(predictions, velocities, times, mean, x)
