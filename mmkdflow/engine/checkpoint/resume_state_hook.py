"""Exact resume: random states in every checkpoint, strict weights."""
import logging
import random
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmkdflow.registry import HOOKS
from ..runner_args import is_resuming, randomness_args
from .layout import RANDOM_STATES_KEY, state_dict_of
from .loading import CheckpointError, state_dict_mismatch


def check_resume_weights(model: torch.nn.Module, checkpoint: dict) -> None:
    """Refuse to resume from weights of another architecture.

    Raises:
        CheckpointError: Listing missing/unexpected keys and shape
            mismatches between the checkpoint and the model.
    """
    from mmengine.model import is_model_wrapper
    if is_model_wrapper(model):
        model = model.module
    state = {k[7:] if k.startswith('module.') else k: v
             for k, v in state_dict_of(checkpoint).items()}
    mismatch = state_dict_mismatch(model.state_dict(), state)
    if mismatch is not None:
        raise CheckpointError(
            f'the resume checkpoint does not match the '
            f'{type(model).__name__} built from the config: {mismatch}. '
            f'Resume with the config the checkpoint was trained with, or '
            f'use load_from (non-strict, no resume) to start a new run '
            f'from it')


def capture_random_states() -> Dict[str, Any]:
    """The generators' states as tensors and plain Python values, so that
    ``torch.load(weights_only=True)`` reads them back without any
    allow-list (torch CPU and CUDA, numpy's global, Python's ``random``).

    Returns:
        dict[str, Any]: The random states.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = dict(
        torch=torch.get_rng_state(),
        numpy=dict(kind=str(kind), keys=torch.from_numpy(
            keys.astype(np.int64)), pos=int(pos), has_gauss=int(has_gauss),
            cached_gaussian=float(cached)),
        python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: Dict[str, Any]) -> None:
    """Inverse of :func:`capture_random_states`."""
    torch.set_rng_state(states['torch'])
    numpy = states['numpy']
    np.random.set_state((numpy['kind'], numpy['keys'].numpy().astype(
        np.uint32), numpy['pos'], numpy['has_gauss'],
        numpy['cached_gaussian']))
    version, internal, gauss = states['python']
    random.setstate((version, tuple(internal), gauss))
    if states.get('cuda') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])


@HOOKS.register_module()
class ResumeStateHook(Hook):
    """Make resuming exact: the random number generators are saved with
    every checkpoint and restored on resume, and a resume checkpoint of
    another architecture is refused.

    MMEngine's resume restores the model, optimizer, schedulers, message hub
    and seed but not the generators' states, so a resumed run would draw
    other noise (DiffKD timesteps and noise, FM-KT step counts and pairings,
    dropout) than an uninterrupted one. This hook stores them under
    ``checkpoint['random_states']`` and restores them in ``before_train``,
    after every other resume step. Validation inside training runs between
    a saved state and the next epoch, so the states are also restored after
    each validation: validating never changes what training draws.

    MMEngine also resumes non-strictly (mismatching weights are only
    logged, leaving them at their initial values); this hook raises
    :class:`~mmkdflow.engine.checkpoint.CheckpointError` listing the mismatches
    instead. ``load_from`` without resume (fine-tuning) is left alone.

    Distributed runs save rank 0's states (MMEngine saves on rank 0 only)
    and restore them on every rank: right for the default
    ``randomness.diff_rank_seed=False``, where all ranks share their states;
    with ``diff_rank_seed=True`` ranks other than 0 keep their fresh seeds
    (a warning says so).
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._pending: Optional[Dict[str, Any]] = None
        self._before_val: Optional[Dict[str, Any]] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[RANDOM_STATES_KEY] = capture_random_states()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not is_resuming(runner):
            return  # load_from (fine-tuning) keeps the run's own seed
        check_resume_weights(runner.model, checkpoint)
        states = checkpoint.get(RANDOM_STATES_KEY)
        if states is None:
            print_log('the resumed checkpoint holds no random states (saved '
                      'without ResumeStateHook): random draws will differ '
                      'from the interrupted run', 'current',
                      level=logging.WARNING)
            return
        if runner.rank != 0 and \
                randomness_args(runner).get('diff_rank_seed'):
            print_log('diff_rank_seed=True: only rank 0 restores its random '
                      'states', 'current', level=logging.WARNING)
            return
        self._pending = states

    def before_train(self, runner) -> None:
        if self._pending is not None:
            restore_random_states(self._pending)
            self._pending = None
            print_log('random states restored from the resumed checkpoint',
                      'current')

    def before_val_epoch(self, runner) -> None:
        self._before_val = capture_random_states()

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._before_val is not None:
            restore_random_states(self._before_val)
            self._before_val = None
