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

Memory and speed options (outputs and gradients equal to the plain path
up to float rounding):

* ``checkpoint=True`` (``VelocityField(checkpoint=True)``, or
  :func:`euler_sample` for any velocity function): each velocity call runs
  under
  :func:`torch.utils.checkpoint.checkpoint` (non-reentrant), so the
  backward pass recomputes that step's meta-encoder instead of storing its
  activations. A step then keeps only its Euler state, velocity and
  prediction alive (a few ``C x H x W`` maps), instead of every
  intermediate of E (a ConvNeXt block holds about a dozen, four of them
  ``4C`` wide): peak memory grows with N by the former only, at the price
  of one more forward of E per step in the backward pass.
* ``compile=True`` (``VelocityField(compile=...)``): ``E(x + emb)`` runs
  through :func:`torch.compile` (TorchInductor). The compiled function is
  shared by all fields and cached by the compile options, and takes the
  time embedding as a tensor input, so N never causes a recompilation.
  Graphs are static-shaped, one per level shape (and per train/eval mode):
  all are compiled in the first step of a run and reused after. Dynamic
  shapes buy nothing here: with torch 2.13 on CPU, inductor's convolutions
  specialise the spatial sizes even under ``dynamic=True`` (measured: one
  recompilation per new H x W either way). So keep the input size fixed
  within a run (a fixed padded batch shape) when compiling; each new level
  shape costs one compilation. Nothing compiled is stored on the module,
  so ``deepcopy`` (EMA), pickling and ``state_dict`` are unaffected.
  Off by default: on a 2-core CPU the compiled ConvNeXt field was not
  faster than eager (largest FPN level at 320x544: the 1x1 GEMMs, about
  60% of the time, stay the same library calls, and the depthwise 7x7
  backward got slower), while DiffKD's compiled denoiser was (measured
  on a loaded machine; ``tools/benchmark.py`` has both rows).

For VP and VE the start :math:`x = Z` stands for :math:`x_1 = \alpha_1 X_T
+ \sigma_1 \epsilon`: the implied noise is :math:`\epsilon = (Z - \alpha_1
X_T) / \sigma_1`, and the exact ODE ends at :math:`\alpha_0 X_T + \sigma_0
\epsilon` (:math:`= X_T` for VP; :math:`X_T + \sigma_{min}\epsilon` for VE).
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.checkpoint import checkpoint as _checkpoint

from .schedules import Schedule, build_schedule
from .time_embedding import TimeEmbedding

VelocityFn = Callable[[Tensor, float], Tensor]
ANCHORS = ('start', 'state')
#: ``torch.compile`` options used for ``compile=True``.
DEFAULT_COMPILE_OPTIONS: Dict[str, Any] = dict(dynamic=False)
#: TorchDynamo's per-function graph limit is raised to at least this: one
#: shared function serves every level shape in train and eval mode (5 FPN
#: levels x 2 modes already exceed torch's default of 8, past which it
#: would silently fall back to eager).
MIN_RECOMPILE_LIMIT = 64
CompileOption = Union[bool, Dict[str, Any], None]

_COMPILED: Dict[Tuple, Callable] = {}


def compile_options(option: CompileOption) -> Optional[Dict[str, Any]]:
    """Normalise a ``compile`` option: ``False``/``None`` -> ``None`` (no
    compilation), ``True`` -> :data:`DEFAULT_COMPILE_OPTIONS`, a dict ->
    those defaults updated with it (keyword arguments of
    :func:`torch.compile`, e.g. ``dict(mode='max-autotune')``).

    Raises:
        TypeError: For anything else.
    """
    if option is None or option is False:
        return None
    if option is True:
        return dict(DEFAULT_COMPILE_OPTIONS)
    if isinstance(option, dict):
        return dict(DEFAULT_COMPILE_OPTIONS, **option)
    raise TypeError(f'compile must be a bool or a dict of torch.compile '
                    f'options, got {option!r}')


def compiled(fn: Callable, options: Dict[str, Any]) -> Callable:
    """``torch.compile(fn, **options)``, created once per ``(fn, options)``
    and shared process-wide.

    Raises TorchDynamo's recompilation limit to
    :data:`MIN_RECOMPILE_LIMIT` if it is lower.

    ``fn`` must be a module-level function that receives the modules it
    runs as arguments (not a bound method or closure): then one compiled
    function serves every instance, TorchDynamo treats the modules'
    parameters as graph inputs (``inline_inbuilt_nn_modules``), and no
    compiled state sits on a module (a deep copy, e.g. an EMA, would
    otherwise keep calling the original's weights).
    """
    key = (fn, tuple(sorted((k, repr(v)) for k, v in options.items())))
    out = _COMPILED.get(key)
    if out is None:
        config = torch._dynamo.config
        for name in ('recompile_limit', 'cache_size_limit'):
            if getattr(config, name, MIN_RECOMPILE_LIMIT) < \
                    MIN_RECOMPILE_LIMIT:
                setattr(config, name, MIN_RECOMPILE_LIMIT)
                break
        out = _COMPILED[key] = torch.compile(fn, **options)
    return out


def _encode(meta_encoder: nn.Module, x: Tensor, embedding: Tensor) -> Tensor:
    r""":math:`E(x + \text{emb}(t))`, the unit :func:`torch.compile` sees."""
    return meta_encoder(x + embedding)


def checkpointed(velocity_fn: VelocityFn) -> VelocityFn:
    """``velocity_fn`` whose activations are recomputed in the backward
    pass (non-reentrant :func:`torch.utils.checkpoint.checkpoint`, RNG state
    preserved) when gradients are recorded; a plain call otherwise."""

    def run(x: Tensor, t: float) -> Tensor:
        if not torch.is_grad_enabled():
            return velocity_fn(x, t)
        return _checkpoint(velocity_fn, x, t, use_reentrant=False)

    return run


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
        checkpoint: Recompute the activations of :math:`E` in the backward
            pass, per call (per Euler step; see the module docstring).
        compile: Run :math:`E(x + \text{emb})` through
            :func:`torch.compile`: ``True`` or a dict of its options (see
            :func:`compile_options`).

    Both options are plain attributes, also settable after construction.
    """

    def __init__(self, meta_encoder: nn.Module,
                 time_embed: TimeEmbedding,
                 checkpoint: bool = False,
                 compile: CompileOption = False) -> None:
        super().__init__()
        self.meta_encoder = meta_encoder
        self.time_embed = time_embed
        self.checkpoint = bool(checkpoint)
        compile_options(compile)  # validate now, not at the first step
        self.compile = compile

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
        if self.checkpoint and torch.is_grad_enabled():
            return _checkpoint(self.encode, x, time_embedding,
                               use_reentrant=False)
        return self.encode(x, time_embedding)

    def encode(self, x: Tensor, time_embedding: Tensor) -> Tensor:
        r""":math:`E(x + \text{emb})`, compiled with the ``compile``
        option (no checkpointing here; see :meth:`forward`)."""
        options = compile_options(self.compile)
        if options is None:
            return _encode(self.meta_encoder, x, time_embedding)
        return compiled(_encode, options)(self.meta_encoder, x,
                                          time_embedding)

    def trajectory(self, num_steps: int, ndim: int) -> VelocityFn:
        """The velocity function of one N-step trajectory, with the N time
        embeddings computed up front in one batched call (share it across
        the levels of one forward); a time outside the table is embedded
        on the fly."""
        table = self.time_embed.steps(num_steps, ndim)
        return lambda x, t: self(x, t, table.get(t))


def euler_sample(velocity_fn: VelocityFn, z: Tensor, num_steps: int,
                 schedule: Union[str, Schedule] = 'rectified',
                 anchor: str = 'start', *,
                 checkpoint: bool = False) -> FlowTrajectory:
    """Run the serial N-step Euler sampler from the student ``z``.

    Args:
        velocity_fn: ``(x, t) -> v``; called N times, with ``x`` always the
            sampler's own Euler state (never anything built from a teacher).
        z: Student representation, the start state at t = 1.
        num_steps: N >= 1.
        schedule: A :class:`Schedule` or its name.
        anchor: ``'start'`` or ``'state'``, see the module docstring.
        checkpoint: Checkpoint every velocity call (activations recomputed
            in the backward pass; see :func:`checkpointed`). Leave it off
            when ``velocity_fn`` calls a ``VelocityField(checkpoint=True)``,
            which checkpoints itself.

    Returns:
        A :class:`FlowTrajectory`.
    """
    if int(num_steps) < 1:
        raise ValueError(f'num_steps must be >= 1, got {num_steps}')
    if anchor not in ANCHORS:
        raise ValueError(f'anchor must be one of {ANCHORS}, got {anchor!r}')
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
