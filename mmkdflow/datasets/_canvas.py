"""Rendering of the digits canvases (numpy only) and the canvas builders'
shared steps.

Images are rendered with numpy only (own bilinear upscaling, own
compositing), so the pixels depend on the seed and on nothing else.
"""
import colorsys
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ._files import cached_build
from ._source import (holdout_params, holdout_split, load_source_digits,
                      stream_rng)

#: Largest fraction of the smaller of two boxes that their intersection may
#: cover on a canvas (on top of the IoU limit).
MAX_COVER = 0.5


def upscale_bilinear(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize of a 2-D array (pixel-centre aligned, edge clamped)."""
    in_h, in_w = img.shape

    def axis(n_out: int, n_in: int):
        src = (np.arange(n_out, dtype=np.float64) + 0.5) * n_in / n_out - 0.5
        src = np.clip(src, 0.0, n_in - 1)
        i0 = np.floor(src).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    y0, y1, wy = axis(out_h, in_h)
    x0, x1, wx = axis(out_w, in_w)
    src = img.astype(np.float64)
    rows = src[y0] * (1.0 - wy)[:, None] + src[y1] * wy[:, None]
    out = rows[:, x0] * (1.0 - wx)[None, :] + rows[:, x1] * wx[None, :]
    return out


def render_background(rng: np.random.Generator, height: int, width: int,
                      noise_std: Tuple[float, float] = (2.0, 5.0),
                      base_level: Tuple[float, float] = (15.0, 70.0),
                      gradient: float = 20.0) -> np.ndarray:
    """A dark, slightly tinted background with a faint random linear gradient
    and low-amplitude Gaussian noise; float64 array (H, W, 3) in 0..255."""
    base = rng.uniform(*base_level) + rng.uniform(-8.0, 8.0, size=3)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    amp = rng.uniform(0.0, gradient)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    ramp = (np.cos(angle) * (xx / max(width - 1, 1) - 0.5) +
            np.sin(angle) * (yy / max(height - 1, 1) - 0.5))
    sigma = rng.uniform(*noise_std)
    noise = rng.normal(0.0, sigma, size=(height, width, 3))
    return base[None, None, :] + amp * ramp[:, :, None] + noise


def random_digit_colour(rng: np.random.Generator) -> np.ndarray:
    """A bright RGB colour (value >= 0.85, saturation <= 0.7) in 0..255."""
    hue = rng.uniform(0.0, 1.0)
    sat = rng.uniform(0.0, 0.7)
    val = rng.uniform(0.85, 1.0)
    return np.array(colorsys.hsv_to_rgb(hue, sat, val), dtype=np.float64) * 255


def digit_patch(digit: np.ndarray, height: int, width: int,
                stroke_threshold: float) -> Tuple[np.ndarray, np.ndarray]:
    """Upscale one 8x8 digit; return ``(intensity, stroke_mask)``.

    ``intensity`` is the bilinear upscale with values in [0, 1]; the stroke is
    ``intensity > stroke_threshold``. Only stroke pixels are painted, so the
    stroke mask is exactly the set of pixels the digit changes, its bounding
    box is the detection box and its pixels carry the segmentation label.
    """
    intensity = upscale_bilinear(digit, height, width)
    return intensity, intensity > stroke_threshold


def mask_bbox(mask: np.ndarray) -> Optional[Tuple[int, int, int, int]]:
    """Tight pixel box ``(x0, y0, x1, y1)`` (inclusive) of a mask, or None."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return None
    return int(xs[0]), int(ys[0]), int(xs[-1]), int(ys[-1])


def box_overlap(a: Sequence[int], b: Sequence[int]) -> Tuple[float, float]:
    """``(IoU, intersection / smaller area)`` of two inclusive pixel boxes
    ``(x0, y0, x1, y1)``."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0, 0.0
    inter = iw * ih
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return (inter / float(area_a + area_b - inter),
            inter / float(min(area_a, area_b)))


def boxes_compatible(box: Sequence[int], others: Sequence[Sequence[int]],
                     max_iou: float) -> bool:
    """True when ``box`` overlaps every box of ``others`` with IoU <=
    ``max_iou`` and covers / is covered by at most :data:`MAX_COVER` of the
    smaller box (a small digit never hides inside a large one)."""
    for other in others:
        iou, cover = box_overlap(box, other)
        if iou > max_iou or cover > MAX_COVER:
            return False
    return True


def render_canvas(rng: np.random.Generator,
                  pool: np.ndarray,
                  image_size: int,
                  num_digits: Tuple[int, int] = (1, 4),
                  scale_range: Tuple[int, int] = (16, 40),
                  max_iou: float = 0.3,
                  stroke_threshold: float = 0.3,
                  max_tries: int = 50,
                  source_indices: Optional[Sequence[int]] = None
                  ) -> Tuple[np.ndarray, np.ndarray, List[dict]]:
    """Render one canvas with digits drawn from ``pool`` (source indices).

    Returns ``(image, label, instances)``: ``image`` uint8 (S, S, 3); ``label``
    uint8 (S, S) with 0 for background and ``d + 1`` on the visible stroke of
    digit ``d`` (a later digit overwrites an earlier one); ``instances`` one
    dict per placed digit with ``digit``, ``source_index``, ``bbox`` (inclusive
    pixel box ``x0, y0, x1, y1`` of its stroke) and ``stroke_area`` (pixels of
    its full, unoccluded stroke). Each digit is scaled to a side drawn from
    ``scale_range`` (width jittered by -15..+10 %), placed so that its box lies
    inside the canvas with IoU <= ``max_iou`` to the boxes placed before and
    an intersection of at most :data:`MAX_COVER` of the smaller box (a digit
    that finds no place in ``max_tries`` draws is dropped; the first one
    always fits). ``source_indices`` fixes the digits instead of drawing
    them (used for single-digit classification crops).
    """
    images, targets = load_source_digits()
    image = render_background(rng, image_size, image_size)
    label = np.zeros((image_size, image_size), dtype=np.uint8)
    if source_indices is None:
        count = int(rng.integers(num_digits[0], num_digits[1] + 1))
        chosen = rng.choice(pool, size=count, replace=True)
    else:
        chosen = np.asarray(source_indices, dtype=np.int64)
    lo, hi = int(scale_range[0]), min(int(scale_range[1]), image_size)
    instances: List[dict] = []
    for src in chosen:
        src = int(src)
        h = int(rng.integers(lo, hi + 1))
        w = int(np.clip(round(h * rng.uniform(0.85, 1.1)), lo, image_size))
        intensity, mask = digit_patch(images[src], h, w, stroke_threshold)
        local = mask_bbox(mask)
        colour = random_digit_colour(rng)
        strength = rng.uniform(0.8, 1.0)
        if local is None:
            continue
        placed = None
        for _ in range(max_tries):
            y = int(rng.integers(0, image_size - h + 1))
            x = int(rng.integers(0, image_size - w + 1))
            box = (x + local[0], y + local[1], x + local[2], y + local[3])
            if boxes_compatible(box, [inst['bbox'] for inst in instances],
                                max_iou):
                placed = (x, y, box)
                break
        if placed is None:
            continue
        x, y, box = placed
        alpha = (strength * intensity * mask)[:, :, None]
        region = image[y:y + h, x:x + w]
        image[y:y + h, x:x + w] = region * (1.0 - alpha) + colour * alpha
        label[y:y + h, x:x + w][mask] = int(targets[src]) + 1
        instances.append(
            dict(digit=int(targets[src]), source_index=src, bbox=box,
                 stroke_area=int(mask.sum())))
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return image, label, instances


def canvas_params(seed, num_train, num_val, image_size, num_digits,
                  scale_range, max_iou, stroke_threshold,
                  val_fraction) -> dict:
    """Validate and normalise the parameters of the canvas builders."""
    params = dict(seed=int(seed), num_train=int(num_train),
                  num_val=int(num_val), image_size=int(image_size),
                  num_digits=[int(v) for v in num_digits],
                  scale_range=[int(v) for v in scale_range],
                  max_iou=float(max_iou),
                  stroke_threshold=float(stroke_threshold),
                  val_fraction=float(val_fraction))
    lo, hi = params['scale_range']
    if not 8 <= lo <= hi or lo > params['image_size']:
        raise ValueError(f'scale_range must satisfy 8 <= low <= high and '
                         f'low <= image_size, got {scale_range} with '
                         f'image_size {image_size}')
    if not 1 <= params['num_digits'][0] <= params['num_digits'][1]:
        raise ValueError(f'num_digits must satisfy 1 <= low <= high, got '
                         f'{num_digits}')
    if params['num_train'] < 0 or params['num_val'] < 0:
        raise ValueError('num_train and num_val must be >= 0')
    if not 0.0 <= params['stroke_threshold'] < 1.0:
        raise ValueError('stroke_threshold must be in [0, 1)')
    return params


def render_split(params: dict, pool: np.ndarray, rng: np.random.Generator
                 ) -> Iterator[Tuple[int, np.ndarray, np.ndarray, List[dict]]]:
    """The canvases of one split: ``(image_id, image, label, instances)``
    for ``image_id`` 1 .. ``params['num_images']``, each from
    :func:`render_canvas` with the builder's canvas parameters."""
    for image_id in range(1, params['num_images'] + 1):
        yield (image_id, ) + render_canvas(
            rng, pool, params['image_size'],
            num_digits=tuple(params['num_digits']),
            scale_range=tuple(params['scale_range']),
            max_iou=params['max_iou'],
            stroke_threshold=params['stroke_threshold'])


def build_canvas_dataset(
        root, builder: str, task_key: int, params: dict, holdout: str,
        tune_fraction: float,
        write_split: Callable[[str, str, dict, Iterator], Dict[str, int]]
) -> str:
    """Build (or reuse) a canvas dataset: the steps DigitsDet and DigitsSeg
    share.

    ``params`` come from :func:`canvas_params`. Train canvases draw digits
    only from the train part of the source split, val canvases only from its
    val part; ``holdout='tune'`` writes the tuning split instead: ``val``
    canvases draw from ``tune_fraction`` of the train digits, ``train``
    canvases from the other train digits (see
    :func:`~mmkdflow.datasets._source.holdout_split`), never from the
    reported val digits. Each split has its own random stream of the seed.

    Args:
        root: Dataset root (see
            :func:`~mmkdflow.datasets._files.cached_build`).
        builder: Builder name, a key of ``BUILDER_ENTRIES``.
        task_key: The task's stream key (independent streams per task).
        params: Validated canvas parameters.
        holdout: ``'val'`` or ``'tune'``.
        tune_fraction: Share of the train digits held out for tuning.
        write_split: ``write_split(stage, split, split_params, canvases)``
            writes one split's files into the staging folder from the
            canvases of :func:`render_split` and returns its sizes for the
            marker.

    Returns:
        ``root``.
    """
    params = dict(params, **holdout_params(holdout, tune_fraction))

    def write(stage: str) -> Dict[str, int]:
        pools = holdout_split(params['seed'], params['val_fraction'],
                              holdout, tune_fraction)
        sizes = {}
        for index, (split, pool) in enumerate(zip(('train', 'val'), pools)):
            split_params = dict(params, num_images=params[f'num_{split}'])
            canvases = render_split(split_params, pool,
                                    stream_rng(params['seed'], task_key,
                                               index))
            sizes.update(write_split(stage, split, split_params, canvases))
        return sizes

    return cached_build(root, builder, params, write)
