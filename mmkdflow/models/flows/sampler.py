r"""The serial N-step Euler sampler of FM-KT.

Given the student representation :math:`Z`, a velocity network
:math:`v(x, t) = E(x + \text{emb}(t))` and a schedule, the sampler runs

.. code-block:: text

    x = Z
    for i = N, N-1, .., 1:                  # t_i = i / N (t = 0 never used)
        v_i    = E(x + emb(t_i))            # E only sees its own Euler state
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
from typing import Callable, List, Optional, Union

import torch.nn as nn
from torch import Tensor

from .schedules import Schedule, build_schedule
from .time_embedding import TimeEmbedding

VelocityFn = Callable[[Tensor, float], Tensor]
ANCHORS = ('start', 'state')


@dataclass
class FlowTrajectory:
    """What one run of the sampler produced.

    Attributes:
        predictions: :math:`\\hat X_i` in evaluation order (t = 1 first).
        velocities: :math:`v_i` in the same order.
        times: :math:`t_i = i / N` in the same order.
        mean: :math:`\\frac1N \\sum_i \\hat X_i` (the refined student output).
        end: The Euler end point :math:`x` at t = 0.
    """

    predictions: List[Tensor]
    velocities: List[Tensor]
    times: List[float]
    mean: Tensor
    end: Tensor


class VelocityField(nn.Module):
    r"""The FM-KT velocity network :math:`v(x, t) = E(x + \text{emb}(t))`.

    Args:
        meta_encoder: The meta-encoder :math:`E` (shape preserving).
        time_embed: The time embedding (output broadcast-added to x).
    """

    def __init__(self, meta_encoder: nn.Module,
                 time_embed: TimeEmbedding) -> None:
        super().__init__()
        self.meta_encoder = meta_encoder
        self.time_embed = time_embed

    def forward(self, x: Tensor, t: float,
                time_embedding: Optional[Tensor] = None) -> Tensor:
        r""":math:`E(x + \text{emb}(t))`.

        Args:
            x: The Euler state.
            t: The time.
            time_embedding: ``emb(t)`` if already computed (e.g. by
                :meth:`TimeEmbedding.steps`, once for all levels).
        """
        if time_embedding is None:
            time_embedding = self.time_embed(t, 1, x.dim())
        return self.meta_encoder(x + time_embedding)

    def trajectory(self, num_steps: int, ndim: int) -> VelocityFn:
        """The velocity function of one N-step trajectory, with the N time
        embeddings computed up front in one batched call (share it across
        the levels of one forward); a time outside the table is embedded
        on the fly."""
        table = self.time_embed.steps(num_steps, ndim)
        return lambda x, t: self(x, t, table.get(t))


def euler_sample(velocity_fn: VelocityFn, z: Tensor, num_steps: int,
                 schedule: Union[str, Schedule] = 'rectified',
                 anchor: str = 'start') -> FlowTrajectory:
    """Run the serial N-step Euler sampler from the student ``z``.

    Args:
        velocity_fn: ``(x, t) -> v``; called N times, with ``x`` always the
            sampler's own Euler state (never anything built from a teacher).
        z: Student representation, the start state at t = 1.
        num_steps: N >= 1.
        schedule: A :class:`Schedule` or its name.
        anchor: ``'start'`` or ``'state'``, see the module docstring.

    Returns:
        A :class:`FlowTrajectory`.
    """
    if int(num_steps) < 1:
        raise ValueError(f'num_steps must be >= 1, got {num_steps}')
    if anchor not in ANCHORS:
        raise ValueError(f'anchor must be one of {ANCHORS}, got {anchor!r}')
    schedule = build_schedule(schedule)
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
