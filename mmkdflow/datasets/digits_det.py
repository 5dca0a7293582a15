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

from ._common import (DIGITS_CLASSES, FORMAT_VERSION, cached_build,
                      canvas_params, dump_json, render_canvas, save_png,
                      holdout_params, holdout_split, stream_rng)

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


def _write_split(stage, split, pool, rng, num_images, params):
    os.makedirs(osp.join(stage, split))
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        image, _, instances = render_canvas(
            rng, pool, params['image_size'],
            num_digits=tuple(params['num_digits']),
            scale_range=tuple(params['scale_range']),
            max_iou=params['max_iou'],
            stroke_threshold=params['stroke_threshold'])
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
                  version=str(params['format_version']),
                  seed=params['seed']),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=DIGITS_COCO_CATEGORIES)
    dump_json(coco, osp.join(stage, 'annotations', f'{split}.json'))
    return len(images), len(annotations)


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
    with IoU <= ``max_iou``. Train canvases draw digits only from the train
    part of :func:`split_source_indices` (``seed``, ``val_fraction``), val
    canvases only from the val part. Same arguments, same bytes. Returns
    ``root``.

    ``holdout='tune'`` writes the tuning split instead: ``val`` canvases
    draw from ``tune_fraction`` of the train digits, ``train`` canvases from
    the other train digits (see
    :func:`~mmkdflow.datasets._common.holdout_split`); never from the
    reported val digits.
    """
    params = canvas_params(seed, num_train, num_val, image_size,
                           num_digits, scale_range, max_iou,
                           stroke_threshold, val_fraction)
    params.update(holdout_params(holdout, tune_fraction))

    def write(stage):
        train_pool, val_pool = holdout_split(seed, val_fraction, holdout,
                                             tune_fraction)
        os.makedirs(osp.join(stage, 'annotations'))
        full = dict(params, format_version=FORMAT_VERSION)
        n_tr, a_tr = _write_split(stage, 'train', train_pool,
                                  stream_rng(seed, _TASK_KEY, 0), num_train,
                                  full)
        n_va, a_va = _write_split(stage, 'val', val_pool,
                                  stream_rng(seed, _TASK_KEY, 1), num_val,
                                  full)
        return dict(train_images=n_tr, train_instances=a_tr,
                    val_images=n_va, val_instances=a_va)

    return cached_build(root, 'digits_det', params, write)
