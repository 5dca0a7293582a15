"""The optim wrapper a training run gets: mixed precision (``--amp``) and
the non-finite guard (:mod:`mmkdflow.engine.nonfinite_guard`)."""
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from .config_log import log_change
from .nonfinite_guard import GUARDED_TYPES, NONFINITE_POLICIES


def _type_name(optim_cfg) -> str:
    """The class name of an optim wrapper config (scope prefix dropped)."""
    return str(optim_cfg.get('type', 'OptimWrapper')).split('.')[-1]


def apply_amp(cfg: Config, cuda: Optional[bool] = None) -> None:
    """``--amp``: fp16 ``AmpOptimWrapper`` on CUDA, bf16
    ``mmkdflow.AutocastOptimWrapper`` on CPU (their guarded versions when
    the config names ``mmkdflow.NonFiniteGuardOptimWrapper``).

    Raises:
        ValueError: The config uses another optimizer wrapper.
    """
    name = _type_name(cfg.optim_wrapper)
    guarded = name == 'NonFiniteGuardOptimWrapper'
    if name not in ('OptimWrapper', 'AmpOptimWrapper') and not guarded:
        raise ValueError(f'--amp works with OptimWrapper (or mmkdflow.'
                         f'NonFiniteGuardOptimWrapper), but the config uses '
                         f'{cfg.optim_wrapper.type}')
    old = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if torch.cuda.is_available() if cuda is None else cuda:
        cfg.optim_wrapper.type = GUARDED_TYPES['AmpOptimWrapper'] \
            if guarded else 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        why = f'--amp on CUDA: fp16, loss_scale=' \
              f'{cfg.optim_wrapper.loss_scale!r}'
    else:
        cfg.optim_wrapper.type = GUARDED_TYPES['AutocastOptimWrapper'] \
            if guarded else 'mmkdflow.AutocastOptimWrapper'
        cfg.optim_wrapper.device_type = 'cpu'
        cfg.optim_wrapper.dtype = 'bfloat16'
        why = "--amp on CPU: bf16 autocast, device_type='cpu'"
    log_change('optim_wrapper.type', old, cfg.optim_wrapper.type, why)


def apply_auto_scale_lr(cfg: Config) -> None:
    """``--auto-scale-lr``: turn on MMEngine's linear learning-rate
    scaling (``auto_scale_lr.enable``), as mmdet's ``tools/train.py`` does.

    Raises:
        ValueError: The config has no ``auto_scale_lr.base_batch_size``
            (the batch size its learning rate was set for).
    """
    scale = cfg.get('auto_scale_lr')
    if not isinstance(scale, dict) or 'base_batch_size' not in scale:
        raise ValueError(
            '--auto-scale-lr needs auto_scale_lr.base_batch_size in the '
            'config (the total batch size its learning rate is set for, '
            'e.g. auto_scale_lr = dict(enable=False, base_batch_size=16) '
            'for 8 GPUs x 2 images); add it or drop --auto-scale-lr')
    log_change('auto_scale_lr.enable', scale.get('enable', False), True,
               f'--auto-scale-lr: lr x (GPUs x batch size) / '
               f'{scale["base_batch_size"]}')
    scale['enable'] = True


def apply_nonfinite_guard(cfg: Config) -> None:
    """Guard the run against NaN/Inf losses and gradients
    (``tools/train.py`` calls this for every config, after ``--amp``).

    The policy is ``model.nonfinite`` (removed from the model config, where
    it was set before the guard became an optim wrapper): ``'raise'``
    (default), ``'skip'`` or ``'off'``. The config's ``OptimWrapper``,
    ``AmpOptimWrapper`` or ``mmkdflow.AutocastOptimWrapper`` becomes its
    guarded version (:data:`~mmkdflow.engine.nonfinite_guard.GUARDED_TYPES`)
    with that ``policy``; a wrapper that is guarded already keeps its own
    ``policy`` unless ``model.nonfinite`` is set. Other wrappers are left
    alone (with a log line).

    Raises:
        ValueError: For an unknown policy, or an explicit ``model.nonfinite``
            with an optim wrapper the guard cannot be applied to.
    """
    model = cfg.get('model')
    explicit = isinstance(model, dict) and 'nonfinite' in model
    policy = model.pop('nonfinite') if explicit else 'raise'
    if policy == 'off':
        return
    if policy not in NONFINITE_POLICIES:
        raise ValueError(f"model.nonfinite must be 'raise', 'skip' or "
                         f"'off', got {policy!r}")
    optim = cfg.get('optim_wrapper')
    if not isinstance(optim, dict):
        return
    name = _type_name(optim)
    if name in ('NonFiniteGuardOptimWrapper',
                'NonFiniteGuardAutocastOptimWrapper',
                'NonFiniteGuardAmpOptimWrapper'):
        if explicit:
            optim['policy'] = policy
        return
    if name not in GUARDED_TYPES or ('type' not in optim
                                     and 'optimizer' not in optim):
        message = (f'the non-finite guard applies to '
                   f'{", ".join(GUARDED_TYPES)}, not to the optim wrapper '
                   f'{optim.get("type", "dict")!r}')
        if explicit:
            raise ValueError(f'model.nonfinite={policy!r}: {message}')
        print_log(f'{message}: NaN/Inf losses are not checked', 'current')
        return
    old = optim.get('type', 'OptimWrapper')
    optim['type'] = GUARDED_TYPES[name]
    optim['policy'] = policy
    log_change('optim_wrapper.type', old, optim['type'],
               f'policy={policy!r}: a NaN/Inf loss or gradient '
               + ('is skipped' if policy == 'skip' else 'stops the run')
               + " before it reaches the weights; model.nonfinite='off' "
               'turns the check off')
