"""DigitsCls: single upscaled handwritten digits for classification.

Layout written by :func:`build_digits_cls` (mmpretrain ``CustomDataset``
folder layout; class folders sort to class index = digit)::

    root/
      train/0/0007.png ...   RGB crops, file stem = source index in
      train/1/...            sklearn.datasets.load_digits
      ...
      val/0/...
      .mmkdflow_digits.json  marker (written last)

Every source digit of the seed's split is used exactly once: 1,437 train and
360 val crops for the default ``val_fraction=0.2``.
"""
import os
import os.path as osp
from typing import Tuple

from ._canvas import render_canvas
from ._files import cached_build, save_png
from ._source import (DIGITS_CLASSES, holdout_params, holdout_split,
                      load_source_digits, stream_rng)

#: ``metainfo`` for mmpretrain's ``CustomDataset`` (the folder names give the
#: same classes in the same order).
DIGITS_CLS_METAINFO = dict(classes=DIGITS_CLASSES)

_TASK_KEY = 3


def _write_split(stage, split, indices, rng, params):
    _, targets = load_source_digits()
    for name in DIGITS_CLASSES:
        os.makedirs(osp.join(stage, split, name))
    for src in indices:
        image, _, instances = render_canvas(
            rng, indices, params['image_size'],
            scale_range=tuple(params['scale_range']),
            stroke_threshold=params['stroke_threshold'],
            source_indices=[int(src)])
        if not instances:  # pragma: no cover - every source digit has ink
            raise RuntimeError(f'Source digit {src} rendered empty')
        digit = int(targets[src])
        save_png(image, osp.join(stage, split, str(digit),
                                 f'{int(src):04d}.png'))
    return len(indices)


def build_digits_cls(root='data/digits_cls',
                     seed: int = 0,
                     image_size: int = 32,
                     scale_range: Tuple[int, int] = (20, 30),
                     stroke_threshold: float = 0.3,
                     val_fraction: float = 0.2,
                     holdout: str = 'val',
                     tune_fraction: float = 0.2) -> str:
    """Build (or reuse) the DigitsCls dataset in ``root``.

    Each source digit becomes one ``image_size`` x ``image_size`` RGB crop:
    the digit scaled to a side in ``scale_range`` at a random position, random
    bright colour, noisy dark background. Train/val use the disjoint split of
    :func:`split_source_indices` (``seed``, ``val_fraction``);
    ``holdout='tune'`` writes the tuning split instead (see
    :func:`~mmkdflow.datasets._source.holdout_split`: ``val`` holds
    ``tune_fraction`` of the train digits, ``train`` the rest). Returns
    ``root``.
    """
    params = dict(seed=int(seed), image_size=int(image_size),
                  scale_range=[int(v) for v in scale_range],
                  stroke_threshold=float(stroke_threshold),
                  val_fraction=float(val_fraction),
                  **holdout_params(holdout, tune_fraction))
    lo, hi = params['scale_range']
    if not 8 <= lo <= hi or lo > params['image_size']:
        raise ValueError(f'scale_range must satisfy 8 <= low <= high and '
                         f'low <= image_size, got {scale_range} with '
                         f'image_size {image_size}')

    def write(stage):
        train_idx, val_idx = holdout_split(seed, val_fraction, holdout,
                                           tune_fraction)
        n_tr = _write_split(stage, 'train', train_idx,
                            stream_rng(seed, _TASK_KEY, 0), params)
        n_va = _write_split(stage, 'val', val_idx,
                            stream_rng(seed, _TASK_KEY, 1), params)
        return dict(train_images=n_tr, val_images=n_va)

    return cached_build(root, 'digits_cls', params, write)
