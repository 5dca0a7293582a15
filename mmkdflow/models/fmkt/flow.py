r"""The flow of FM-KT's connectors: one velocity field per level (or one
shared), a schedule, the step counts and the serial Euler sampler.

Both FM-KT connectors (:class:`~mmkdflow.models.fmkt.FMKTFeatureConnector`
and :class:`~mmkdflow.models.fmkt.FMKTLogitConnector`) hold one
:class:`EulerFlow`; they differ only in what they do with its predictions
(a loss on features, or a classifier and a loss on logits).

Initialisation (``init``):

* ``'identity'`` (default): each velocity field ends with a per-channel
  output gain :math:`g` initialised to 0, :math:`v = g \odot E(x +
  \text{emb}(t))` (:class:`~mmkdflow.models.fmkt.GatedVelocityField`), so
  at initialisation :math:`v_i = 0`, every prediction :math:`\hat X_i = Z`
  (rectified flow) and their mean is :math:`Z`: a replaced FPN level hands
  the head the raw level, FM-KT-Theta's loss starts at 0, and
  :math:`\partial\,\text{out} / \partial Z = I`. The gain gets the gradient
  :math:`E(\cdot) \odot \delta` at the first step, after which :math:`E`
  trains as well (the same mechanism as a zero-initialised layer scale).
  It works for every meta-encoder, including residual ones (``resconv``,
  ``transformer``) whose output is not near 0 at initialisation whatever
  their last layer.
* ``'released'``: no gain, as in the released code. Deliberate difference
  from it: there, the velocity at initialisation is about :math:`LN(x +
  \text{emb})` (the ``convnext`` and ``mlp`` encoders end in a LayerNorm), a
  unit-RMS vector per pixel whatever the feature scale, so :math:`Z - v`
  cancels or flips student features whose per-pixel RMS is near or below 1
  (docs/results.md gives what that does to a demo run).
"""
from typing import Dict, Iterable, Optional, Sequence, Union

import torch
import torch.nn as nn
from torch import Tensor

from ..utils import CompileOption
from .meta_encoders import build_meta_encoder
from .sampler import FlowTrajectory, check_anchor, euler_sample
from .schedules import build_schedule
from .time_embedding import TimeEmbedding
from .velocity import GatedVelocityField, VelocityField

FLOW_INITS = ('identity', 'released')


class EulerFlow(nn.Module):
    """Velocity fields of FM-KT and their N-step Euler sampler.

    One field per level in ``levels`` (``shared=False``, the released
    detection recipe), or one field for all of them (``shared=True``). A
    level not in ``levels`` has no flow: the connectors return its raw
    tensor (the released code builds no flow for a level of weight 0).

    Args:
        channels (int): ``C`` of every state.
        meta_encoder (str | dict | nn.Module): Meta-encoder name, config or
            module (see :func:`~mmkdflow.models.fmkt.build_meta_encoder`); a
            module is only accepted for one field. Defaults to 'convnext'.
        schedule (str | dict): ``'rectified'``, ``'vp'``, ``'ve'`` or a config.
            Defaults to 'rectified'.
        num_steps (int): N in training. Defaults to 4.
        num_steps_test (int, optional): N at inference (``None``:
            ``num_steps``). Defaults to None.
        num_steps_choices (Sequence[int], optional): If set, N is drawn
            uniformly from it at each training call (e.g.
            ``(1, 2, 4, 8, 16)``). Defaults to None.
        levels (Iterable[int], optional): The levels that get a flow; ``None``
            (only with ``shared``): every level. Defaults to (0,).
        shared (bool): One field for every level. Defaults to True.
        anchor (str): ``'start'`` or ``'state'`` (see
            :func:`~mmkdflow.models.fmkt.euler_sample`). Defaults to 'start'.
        time_embed (str): ``'linear'`` (feature flows) or ``'mlp'`` (logit
            flows). Defaults to 'linear'.
        init (str): ``'identity'`` or ``'released'``, see the module
            docstring. Defaults to 'identity'.
        checkpoint (bool): Recompute each step's meta-encoder activations in
            the backward pass (peak memory near N = 1's whatever N; see
            :mod:`~mmkdflow.models.fmkt.velocity`). Defaults to False.
        compile (bool | dict, optional): ``torch.compile`` the meta-encoder
            call: ``True`` or a dict of its options. Defaults to False.
    """

    def __init__(self,
                 channels: int,
                 meta_encoder: Union[str, dict, nn.Module] = 'convnext',
                 schedule: Union[str, dict] = 'rectified',
                 num_steps: int = 4,
                 num_steps_test: Optional[int] = None,
                 num_steps_choices: Optional[Sequence[int]] = None,
                 levels: Optional[Iterable[int]] = (0, ),
                 shared: bool = True,
                 anchor: str = 'start',
                 time_embed: str = 'linear',
                 init: str = 'identity',
                 checkpoint: bool = False,
                 compile: CompileOption = False) -> None:
        super().__init__()
        if num_steps_test is None:
            num_steps_test = num_steps
        for name, value in (('num_steps', num_steps),
                            ('num_steps_test', num_steps_test)):
            if int(value) < 1:
                raise ValueError(
                    f'FM-KT {name} must be >= 1 (Euler steps), got {value}; '
                    f'leave num_steps_test unset to use num_steps')
        if num_steps_choices is not None and (
                not len(num_steps_choices)
                or any(int(n) < 1 for n in num_steps_choices)):
            raise ValueError(
                f'FM-KT num_steps_choices must be a non-empty list of step '
                f'counts >= 1 (e.g. (1, 2, 4, 8, 16)), got '
                f'{num_steps_choices}')
        check_anchor(anchor)
        if init not in FLOW_INITS:
            raise ValueError(f'init must be one of {FLOW_INITS}, got '
                             f'{init!r}')
        if levels is None and not shared:
            raise ValueError('one flow per level needs the levels')
        self.levels = None if levels is None else sorted(
            set(int(k) for k in levels))
        if self.levels is not None and not self.levels:
            raise ValueError('EulerFlow needs at least one level with a '
                             'flow; every level weight is 0')
        self.channels = int(channels)
        self.schedule = build_schedule(schedule)
        self.num_steps = int(num_steps)
        self.num_steps_test = int(num_steps_test)
        self.num_steps_choices = tuple(int(n) for n in num_steps_choices) \
            if num_steps_choices else None
        self.shared, self.anchor, self.init = bool(shared), anchor, init
        self.field_options = dict(checkpoint=bool(checkpoint),
                                  compile=compile)
        keys = ['0'] if self.shared else [str(k) for k in self.levels]
        if isinstance(meta_encoder, nn.Module) and len(keys) > 1:
            raise ValueError('a meta-encoder module instance can serve one '
                             'field only; pass its config for one flow '
                             'per level')
        self.fields = nn.ModuleDict(
            (key, self._make_field(meta_encoder, time_embed)) for key in keys)

    def _make_field(self, meta_encoder: Union[str, dict, nn.Module],
                    time_embed: str) -> VelocityField:
        encoder = build_meta_encoder(meta_encoder, self.channels)
        embed = TimeEmbedding(self.channels, time_embed)
        if self.init == 'identity':
            return GatedVelocityField(encoder, embed, self.channels,
                                      **self.field_options)
        return VelocityField(encoder, embed, **self.field_options)

    def has_flow(self, level: int) -> bool:
        """Whether ``level`` has a flow (else its raw tensor is kept).

        Returns:
            bool: Whether ``level`` has a flow.
        """
        return self.levels is None or level in self.levels

    def field(self, level: int = 0) -> VelocityField:
        """The velocity field of ``level``.

        Returns:
            VelocityField: The velocity field.
        """
        if not self.has_flow(level):
            raise KeyError(f'level {level} has no flow (its weight is 0); '
                           f'levels with a flow: {self.levels}')
        return self.fields['0' if self.shared else str(level)]

    def draw_num_steps(self, training: bool) -> int:
        """N for one call: ``num_steps_test`` at inference; in training
        ``num_steps`` or a uniform draw from ``num_steps_choices``.

        Returns:
            int: The number of steps N.
        """
        if not training:
            return self.num_steps_test
        if self.num_steps_choices:
            pick = torch.randint(len(self.num_steps_choices), ()).item()
            return self.num_steps_choices[pick]
        return self.num_steps

    def forward(self, z: Tensor, level: int = 0,
                num_steps: Optional[int] = None,
                time_embeddings: Optional[Dict[float, Tensor]] = None
                ) -> FlowTrajectory:
        """Run the sampler on one student tensor.

        Args:
            z (Tensor): The student tensor (the start state at t = 1).
            level (int): Picks the field. Defaults to 0.
            num_steps (int, optional): N; ``None``: ``num_steps_test``.
                Defaults to None.
            time_embeddings (dict, optional): ``{t_i: emb(t_i)}`` of this N
                from :meth:`time_embeddings`, to share one embedding call
                across the levels of a shared field. Defaults to None.

        Returns:
            FlowTrajectory: The N predictions, their mean and the states.
        """
        field = self.field(level)
        num_steps = num_steps or self.num_steps_test
        table = time_embeddings if time_embeddings is not None else \
            field.time_embed.steps(num_steps, z.dim())

        def velocity(x: Tensor, t: float) -> Tensor:
            return field(x, t, table.get(t))

        if getattr(field.meta_encoder, 'channels_last', False) \
                and z.dim() == 4:
            # the Euler states, velocities and predictions all stay in the
            # meta-encoder's layout: no copy inside the loop
            z = z.contiguous(memory_format=torch.channels_last)
        return euler_sample(velocity, z, num_steps, self.schedule,
                            self.anchor)

    def time_embeddings(self, num_steps: int,
                        ndim: int) -> Optional[Dict[float, Tensor]]:
        """The N time embeddings of the shared field, computed once per
        forward for every level (``None`` when the fields are per level).

        Returns:
            dict[float, Tensor] | None: ``{t_i: emb(t_i)}``, or ``None`` for
            per-level fields.
        """
        if not self.shared:
            return None
        return self.fields['0'].time_embed.steps(num_steps, ndim)
