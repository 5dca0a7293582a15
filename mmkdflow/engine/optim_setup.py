"""The config keys of ``tools/train.py``'s ``--amp`` and ``--auto-scale-lr``,
as mmdet's ``tools/train.py`` sets them."""
from typing import Optional

import torch
from mmengine.config import Config


def apply_amp(cfg: Config, cuda: Optional[bool] = None) -> None:
    """``--amp``: ``optim_wrapper.type`` becomes ``AmpOptimWrapper`` (fp16,
    ``loss_scale='dynamic'``) on CUDA, ``mmkdflow.AutocastOptimWrapper``
    (bf16 autocast) on CPU, where MMEngine's ``AmpOptimWrapper`` refuses to
    run. ``SafeTrainingHook`` guards either against NaN/Inf.

    Args:
        cfg (Config): The training config.
        cuda (bool, optional): Whether training runs on CUDA. Defaults to
            ``torch.cuda.is_available()``.

    Raises:
        ValueError: The config uses an optim wrapper other than
            ``OptimWrapper`` / ``AmpOptimWrapper``.
    """
    name = str(cfg.optim_wrapper.get('type', 'OptimWrapper')).split('.')[-1]
    if name not in ('OptimWrapper', 'AmpOptimWrapper',
                    'AutocastOptimWrapper'):
        raise ValueError(f'--amp works with OptimWrapper, but the config '
                         f'uses {cfg.optim_wrapper.type}; set the mixed '
                         f'precision wrapper in the config instead')
    if torch.cuda.is_available() if cuda is None else cuda:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:
        cfg.optim_wrapper.type = 'mmkdflow.AutocastOptimWrapper'
        cfg.optim_wrapper.device_type = 'cpu'
        cfg.optim_wrapper.dtype = 'bfloat16'


def apply_auto_scale_lr(cfg: Config) -> None:
    """``--auto-scale-lr``: ``auto_scale_lr.enable = True`` (MMEngine's
    linear learning-rate scaling), as mmdet's ``tools/train.py`` does.

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
    scale['enable'] = True
