"""DigitsDet: COCO-format detection canvases of real handwritten digits.

Layout written by :func:`build_digits_det`::

    root/
      train/000001.png ...          RGB canvases, file stem = image id
      val/000001.png ...
      annotations/train.json        COCO detection json
      annotations/val.json
      .mmkdflow_digits.json         marker (written last)

Categories: name ``'d'`` has category id ``d + 1`` (``'0'`` -> 1 ... ``'9'`` ->
10), so with ``metainfo=dict(classes=DIGITS_CLASSES)`` mmdet's ``CocoDataset``
maps digit ``d`` to label ``d``. Image ids and annotation ids start at 1 in
each split (pycocotools cannot match id 0). Every annotation holds ``bbox``
``[x, y, w, h]`` (the tight box of the digit's painted stroke; the pixel
columns ``x .. x + w - 1`` and rows ``y .. y + h - 1``), ``area``
(= ``w * h``), ``iscrowd`` 0, and two extra keys that readers ignore:
``source_index`` (index of the digit in ``sklearn.datasets.load_digits``) and
``stroke_area`` (pixels of its unoccluded stroke).
"""
import os
import os.path as osp
from typing import Tuple

from ._canvas import build_canvas_dataset, canvas_params
from ._files import FORMAT_VERSION, dump_json, save_png
from ._source import DIGITS_CLASSES

#: Palette for visualisers, one colour per digit class.
DIGITS_PALETTE = [(220, 20, 60), (119, 11, 32), (0, 0, 142), (0, 0, 230),
                  (106, 0, 228), (0, 60, 100), (0, 80, 100), (0, 0, 70),
                  (0, 0, 192), (250, 170, 30)]
#: ``metainfo`` for mmdet's ``CocoDataset`` (and for the classifier data).
DIGITS_METAINFO = dict(classes=DIGITS_CLASSES, palette=DIGITS_PALETTE)
#: COCO categories: name ``str(d)``, id ``d + 1``.
DIGITS_COCO_CATEGORIES = [
    dict(id=d + 1, name=str(d), supercategory='digit') for d in range(10)
]

_TASK_KEY = 1


def digit_to_category_id(digit: int) -> int:
    """COCO category id of a digit (``d + 1``)."""
    return int(digit) + 1


def category_id_to_digit(category_id: int) -> int:
    """Digit of a COCO category id (``id - 1``)."""
    return int(category_id) - 1


def _write_split(stage, split, params, canvases):
    os.makedirs(osp.join(stage, split))
    os.makedirs(osp.join(stage, 'annotations'), exist_ok=True)
    images, annotations = [], []
    for image_id, image, _, instances in canvases:
        file_name = f'{image_id:06d}.png'
        save_png(image, osp.join(stage, split, file_name))
        images.append(
            dict(id=image_id, file_name=file_name,
                 width=params['image_size'], height=params['image_size']))
        for inst in instances:
            x0, y0, x1, y1 = inst['bbox']
            w, h = x1 - x0 + 1, y1 - y0 + 1
            annotations.append(
                dict(id=len(annotations) + 1, image_id=image_id,
                     category_id=digit_to_category_id(inst['digit']),
                     bbox=[float(x0), float(y0), float(w), float(h)],
                     area=float(w * h), iscrowd=0,
                     source_index=inst['source_index'],
                     stroke_area=inst['stroke_area']))
    coco = dict(
        info=dict(description=f'mmkdflow DigitsDet {split} split',
                  version=str(FORMAT_VERSION),
                  seed=params['seed']),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=DIGITS_COCO_CATEGORIES)
    dump_json(coco, osp.join(stage, 'annotations', f'{split}.json'))
    return {f'{split}_images': len(images),
            f'{split}_instances': len(annotations)}


def build_digits_det(root='data/digits_det',
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
    """Build (or reuse) the COCO-format DigitsDet dataset in ``root``.

    Each ``image_size`` x ``image_size`` canvas holds ``num_digits`` (inclusive
    range) digits, each scaled to a side in ``scale_range`` pixels, with a
    random bright colour on a noisy dark background; boxes of a canvas overlap
    with IoU <= ``max_iou``. Train and val canvases draw from disjoint source
    digits (``seed``, ``val_fraction``); ``holdout='tune'`` writes the tuning
    split instead (see
    :func:`~mmkdflow.datasets._canvas.build_canvas_dataset`). Same arguments,
    same bytes. Returns ``root``.
    """
    params = canvas_params(seed, num_train, num_val, image_size,
                           num_digits, scale_range, max_iou,
                           stroke_threshold, val_fraction)
    return build_canvas_dataset(root, 'digits_det', _TASK_KEY, params,
                                holdout, tune_fraction, _write_split)
