r"""EMA of the distiller's connectors (the FM-KT flow), evaluated at test time.

The FM-KT detection recipes keep an exponential moving average of the flow
parameters (decay 0.999) and evaluate with it:

.. math::

    \bar\theta_{k+1} = \text{decay}\cdot\bar\theta_k
                       + (1 - \text{decay})\cdot\theta_{k+1}

(MMEngine's ``ExponentialMovingAverage`` with ``momentum = 1 - decay``).
Only ``model.connectors`` (or some of its points) is averaged: the student
itself is trained and evaluated as is.
"""
import copy
import logging
from typing import Optional, Sequence

import torch.nn as nn
from mmengine.hooks import EMAHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmkdflow.registry import HOOKS
from ..checkpoint.layout import (CONNECTOR_EMA_KEY, connector_weights,
                                 pack_connector_ema)
from ..runner_args import is_resuming


@HOOKS.register_module()
class ConnectorEMAHook(EMAHook):
    """Keep an EMA of the distiller's connectors and validate/test with it.

    Built on MMEngine's :class:`~mmengine.hooks.EMAHook` and
    :class:`~mmengine.model.ExponentialMovingAverage`, restricted to the
    connectors:

    * ``before_run``: averages a copy of ``model.connectors`` (the points
      named in ``points``, or all), unwrapping a DDP model
      (``runner.model.module``);
    * ``after_train_iter``: one EMA update (a copy of the live weights
      before ``begin_iter``);
    * validation and test: the EMA weights are swapped into the live
      connectors before the epoch and swapped back after it;
    * checkpoints: the checkpoint's ``state_dict`` keeps the *live*
      weights; the average (with its step count) is saved under
      ``connector_ema_state_dict`` (the layout of
      :mod:`~mmkdflow.engine.checkpoint.layout`) and loaded back by
      ``resume`` and ``load_from`` (so resume continues the average and
      ``tools/test.py`` evaluates with it). A checkpoint without that
      entry starts the average from its connector weights.
      ``tools/export_student.py`` writes the averaged weights into the
      deployable model.

    Args:
        decay (float, optional): EMA decay (0.999 in the FM-KT detection
            recipes); the MMEngine ``momentum`` is ``1 - decay``. Defaults to
            None.
        momentum (float, optional): MMEngine's momentum instead of ``decay``
            (give one). Defaults to None.
        points (Sequence[str], optional): Names of the distillation points
            whose connectors are averaged; ``None``: all connectors. Defaults
            to None.
        interval (int): Update every ``interval`` iterations. Defaults to 1.
        update_buffers (bool): Average buffers too (otherwise they are copied).
            Defaults to False.
        begin_iter (int): First iteration of averaging (before it the average
            follows the live weights). Defaults to 0.
        strict_load (bool): Whether a checkpoint's EMA entry must match
            exactly. Defaults to True.
    """

    def __init__(self,
                 decay: Optional[float] = None,
                 momentum: Optional[float] = None,
                 points: Optional[Sequence[str]] = None,
                 interval: int = 1,
                 update_buffers: bool = False,
                 begin_iter: int = 0,
                 strict_load: bool = True) -> None:
        if decay is not None and momentum is not None:
            raise ValueError('give ConnectorEMAHook either decay or momentum '
                             f'(= 1 - decay), not both ({decay}, {momentum})')
        if momentum is None:
            decay = 0.999 if decay is None else float(decay)
            if not 0. < decay < 1.:
                raise ValueError(f'decay must be in (0, 1), got {decay}')
            momentum = 1. - decay
        if not 0. < momentum < 1.:
            raise ValueError(f'momentum must be in (0, 1), got {momentum}')
        if begin_iter < 0 or interval < 1:
            raise ValueError(f'need begin_iter >= 0 and interval >= 1, got '
                             f'{begin_iter}, {interval}')
        super().__init__(ema_type='ExponentialMovingAverage',
                         strict_load=strict_load, begin_iter=begin_iter,
                         momentum=momentum, interval=interval,
                         update_buffers=update_buffers)
        self.points = None if points is None else list(points)

    def _averaged(self, model: nn.Module) -> nn.ModuleDict:
        connectors = getattr(model, 'connectors', None)
        if not isinstance(connectors, nn.ModuleDict) or not len(connectors):
            raise ValueError(
                f'ConnectorEMAHook averages the connectors of an mmkdflow '
                f'distiller, but {type(model).__name__} has none; remove the '
                f'hook or give the distiller a connector')
        names = self.points if self.points is not None else list(connectors)
        missing = [n for n in names if n not in connectors]
        if missing or not names:
            raise ValueError(
                f'ConnectorEMAHook points {missing or names} have no '
                f'connector; points with connectors: {list(connectors)}')
        return nn.ModuleDict({name: connectors[name] for name in names})

    def before_run(self, runner) -> None:
        """Build the average of the chosen connectors."""
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        self.src_model = self._averaged(model)
        from mmengine.registry import MODELS
        self.ema_model = MODELS.build(
            self.ema_cfg, default_args=dict(model=self.src_model))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Save the average beside the live weights."""
        checkpoint[CONNECTOR_EMA_KEY] = pack_connector_ema(
            self.ema_model.state_dict())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore the average (resume, ``load_from``, ``tools/test.py``),
        or start it from the checkpoint's connector weights."""
        saved = checkpoint.get(CONNECTOR_EMA_KEY)
        if saved is not None:
            try:
                self.ema_model.load_state_dict(saved, strict=self.strict_load)
            except RuntimeError as err:
                raise RuntimeError(
                    f'ConnectorEMAHook: the checkpoint\'s '
                    f'{CONNECTOR_EMA_KEY} does not match the averaged points '
                    f'{list(self.src_model)}; set points= as when it was '
                    f'written, or strict_load=False ({err})') from err
            return
        own = connector_weights(checkpoint, self.src_model)
        if is_resuming(runner):
            print_log(f'no {CONNECTOR_EMA_KEY} in the checkpoint; the '
                      f'connector EMA starts from its connector weights',
                      'current', logging.WARNING)
        if own:
            from mmengine.runner.checkpoint import load_state_dict
            load_state_dict(self.ema_model.module, copy.deepcopy(own),
                            strict=False)
