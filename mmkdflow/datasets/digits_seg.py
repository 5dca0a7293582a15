"""DigitsSeg: semantic segmentation canvases of real handwritten digits.

Layout written by :func:`build_digits_seg` (mmseg ``BaseSegDataset`` with
``img_suffix='.png'``, ``seg_map_suffix='.png'``)::

    root/
      img_dir/train/000001.png ...  RGB canvases
      img_dir/val/000001.png ...
      ann_dir/train/000001.png ...  single-channel uint8 label maps, same stem
      ann_dir/val/000001.png ...
      .mmkdflow_digits.json         marker (written last)

Labels (11 classes): 0 = ``background``, digit ``d`` -> ``d + 1`` on the pixels
of its stroke (bilinear-upscaled intensity above ``stroke_threshold``; exactly
the pixels the digit paints; a digit drawn later overwrites an earlier one).
There is no ignore label (255 never occurs).
"""
import os
import os.path as osp
from typing import Tuple

from ._canvas import build_canvas_dataset, canvas_params
from ._files import save_png
from ._source import DIGITS_CLASSES

#: Class names of the segmentation dataset: label 0 is background, label
#: ``d + 1`` is digit ``d``.
DIGITS_SEG_CLASSES = ('background', ) + DIGITS_CLASSES
#: One RGB colour per segmentation label.
DIGITS_SEG_PALETTE = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25],
                      [0, 130, 200], [245, 130, 48], [145, 30, 180],
                      [70, 240, 240], [240, 50, 230], [210, 245, 60],
                      [250, 190, 212]]
#: ``metainfo`` for mmseg's ``BaseSegDataset``.
DIGITS_SEG_METAINFO = dict(classes=DIGITS_SEG_CLASSES,
                           palette=DIGITS_SEG_PALETTE)

_TASK_KEY = 2


def _write_split(stage, split, params, canvases):
    img_dir = osp.join(stage, 'img_dir', split)
    ann_dir = osp.join(stage, 'ann_dir', split)
    os.makedirs(img_dir)
    os.makedirs(ann_dir)
    for image_id, image, label, _ in canvases:
        name = f'{image_id:06d}.png'
        save_png(image, osp.join(img_dir, name))
        save_png(label, osp.join(ann_dir, name))
    return {f'{split}_images': params['num_images']}


def build_digits_seg(root='data/digits_seg',
                     seed: int = 0,
                     num_train: int = 800,
                     num_val: int = 200,
                     image_size: int = 128,
                     num_digits: Tuple[int, int] = (1, 4),
                     scale_range: Tuple[int, int] = (16, 40),
                     max_iou: float = 0.3,
                     stroke_threshold: float = 0.3,
                     val_fraction: float = 0.2,
                     holdout: str = 'val',
                     tune_fraction: float = 0.2) -> str:
    """Build (or reuse) the DigitsSeg dataset in ``root``.

    Same canvases as :func:`~mmkdflow.datasets.build_digits_det` (same
    arguments, own random stream) with per-pixel labels instead of boxes.
    Train and val draw from disjoint source digits; ``holdout='tune'``
    writes the tuning split instead (see
    :func:`~mmkdflow.datasets._canvas.build_canvas_dataset`). Returns
    ``root``.
    """
    params = canvas_params(seed, num_train, num_val, image_size,
                           num_digits, scale_range, max_iou,
                           stroke_threshold, val_fraction)
    return build_canvas_dataset(root, 'digits_seg', _TASK_KEY, params,
                                holdout, tune_fraction, _write_split)
