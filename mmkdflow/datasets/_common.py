"""Shared machinery of the embedded digits datasets.

Source data: scikit-learn's 1,797 real 8x8 handwritten digits
(``sklearn.datasets.load_digits``), which ship inside scikit-learn, so nothing
is downloaded. Every builder in this package

* splits the 1,797 source digits by index into train and val with the seed
  (:func:`split_source_indices`, the same split for every task), so the two
  splits never share a source digit;
* renders images with numpy only (own bilinear upscaling, own compositing), so
  the pixels depend on the seed and on nothing else;
* writes everything into a staging folder inside ``root``, moves the finished
  folders into place and writes the marker file ``root/.mmkdflow_digits.json``
  LAST; a later call with identical parameters finds the marker and returns at
  once, any other call removes the builder's own folders and rebuilds.

Only numpy, Pillow and the standard library are used (scikit-learn only to read
the source digits); no torch, no OpenMMLab package.
"""
import colorsys
import functools
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

#: Bump when the generated files change for identical parameters; a marker
#: with another version is stale and triggers a rebuild.
FORMAT_VERSION = 1
#: Name of the marker file written last into every dataset root.
MARKER_NAME = '.mmkdflow_digits.json'
#: Number of source digits in ``sklearn.datasets.load_digits``.
NUM_SOURCE_DIGITS = 1797

#: Class names of the detection and classification datasets: digit ``d`` is
#: class index ``d`` (detection category id ``d + 1``).
DIGITS_CLASSES = tuple(str(d) for d in range(10))
#: Largest fraction of the smaller of two boxes that their intersection may
#: cover on a canvas (on top of the IoU limit).
MAX_COVER = 0.5


@functools.lru_cache(maxsize=1)
def load_source_digits() -> Tuple[np.ndarray, np.ndarray]:
    """Return the source digits as ``(images, targets)``.

    ``images`` is a read-only float32 array of shape (1797, 8, 8) with values
    in [0, 1] (the original 0..16 grey levels divided by 16); ``targets`` is a
    read-only int64 array of shape (1797,) with the digit 0..9.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the env
        raise ImportError(
            'The embedded digits datasets read the 8x8 digits that ship with '
            'scikit-learn: pip install scikit-learn') from exc
    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float64) / 16.0)
    images = np.clip(images, 0.0, 1.0).astype(np.float32)
    targets = np.asarray(bunch.target, dtype=np.int64)
    if images.shape != (NUM_SOURCE_DIGITS, 8, 8):
        raise RuntimeError(
            f'Unexpected shape of sklearn digits: {images.shape}')
    images.setflags(write=False)
    targets.setflags(write=False)
    return images, targets


def split_source_indices(seed: int = 0,
                         val_fraction: float = 0.2,
                         num_digits: int = NUM_SOURCE_DIGITS
                         ) -> Tuple[np.ndarray, np.ndarray]:
    """Split the source digit indices into disjoint, sorted train/val sets.

    A permutation drawn from ``numpy.random.default_rng(seed)`` is cut into
    ``floor(num_digits * (1 - val_fraction))`` train indices and the rest val
    indices (1437 / 360 for the defaults). Every task uses this split, so a
    digit in a train split of one task never appears in a val split of another.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction}')
    perm = np.random.default_rng(seed).permutation(num_digits)
    num_train = int(np.floor(num_digits * (1.0 - val_fraction)))
    return np.sort(perm[:num_train]), np.sort(perm[num_train:])


#: Held-out splits a builder can write into its ``val`` folder.
HOLDOUTS = ('val', 'tune')
#: Stream key of the tuning split's permutation (independent of the split).
_TUNE_KEY = 7


def holdout_split(seed: int = 0, val_fraction: float = 0.2,
                  holdout: str = 'val', tune_fraction: float = 0.2
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Source digit indices of a build's ``train`` and ``val`` folders.

    ``holdout='val'`` is :func:`split_source_indices` (the reported
    train / val split). ``holdout='tune'`` is the tuning split for choosing
    hyper-parameters: ``tune_fraction`` of the *train* digits (drawn with
    their own stream of ``seed``) become the held-out split, and training
    uses the remaining train digits. The tuning split therefore never shares
    a source digit with the reported val split, nor with what the tuning
    runs train on.

    Raises:
        ValueError: ``holdout`` is not one of :data:`HOLDOUTS`, or
            ``tune_fraction`` is not in (0, 1).
    """
    train, val = split_source_indices(seed, val_fraction)
    if holdout == 'val':
        return train, val
    if holdout != 'tune':
        raise ValueError(f'holdout must be one of {HOLDOUTS}, got '
                         f'{holdout!r}')
    if not 0.0 < tune_fraction < 1.0:
        raise ValueError(f'tune_fraction must be in (0, 1), got '
                         f'{tune_fraction}')
    perm = np.random.default_rng([int(seed), _TUNE_KEY]).permutation(train)
    num_tune = int(round(len(train) * tune_fraction))
    return np.sort(perm[num_tune:]), np.sort(perm[:num_tune])


def holdout_params(holdout: str, tune_fraction: float) -> dict:
    """Marker parameters of the held-out split: none for the reported
    ``val`` split (so existing builds stay valid), ``holdout`` and
    ``tune_fraction`` for the tuning split."""
    if holdout not in HOLDOUTS:
        raise ValueError(f'holdout must be one of {HOLDOUTS}, got '
                         f'{holdout!r}')
    return {} if holdout == 'val' else dict(
        holdout=holdout, tune_fraction=float(tune_fraction))


def stream_rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator for one (task, split) stream of a seed."""
    return np.random.default_rng([int(seed), *[int(k) for k in keys]])


# --------------------------------------------------------------- rendering
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


# ------------------------------------------------------------------- files
def save_png(array: np.ndarray, path: str) -> None:
    """Write a uint8 array (H, W) or (H, W, 3) as PNG (deterministic bytes)."""
    from PIL import Image
    mode = 'L' if array.ndim == 2 else 'RGB'
    Image.fromarray(np.ascontiguousarray(array), mode=mode).save(
        path, format='PNG', compress_level=6)


def dump_json(obj, path: str) -> None:
    """Write JSON with a fixed layout, so equal content means equal bytes."""
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, sort_keys=True, separators=(',', ':'))
        f.write('\n')


def read_marker(root: str) -> Optional[dict]:
    """The marker of a built dataset root, or None when missing/unreadable."""
    try:
        with open(osp.join(root, MARKER_NAME), encoding='utf-8') as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _normalise(params: dict) -> dict:
    """Parameters as they read back from JSON (tuples become lists)."""
    return json.loads(json.dumps(params, sort_keys=True))


#: Top-level files/folders of ``root`` that each builder writes (and removes
#: again when the folder is stale).
BUILDER_ENTRIES = {
    'digits_det': ('train', 'val', 'annotations'),
    'digits_seg': ('img_dir', 'ann_dir'),
    'digits_cls': ('train', 'val'),
}


def _remove(path: str) -> None:
    if osp.isdir(path) and not osp.islink(path):
        shutil.rmtree(path)
    elif osp.lexists(path):
        os.remove(path)


def cached_build(root, builder: str, params: dict,
                 write: Callable[[str], Dict[str, int]]) -> str:
    """Build a dataset into ``root`` unless an identical build is there.

    ``write`` fills a staging folder with exactly the entries
    ``BUILDER_ENTRIES[builder]`` and returns the sizes recorded in the marker.
    If ``root/.mmkdflow_digits.json`` names the same builder, format version
    and parameters, nothing is touched. Otherwise the stale marker and the
    entries of this builder (and of the builder the stale marker names) are
    removed, the staged entries are moved in and the marker is written last.
    Other files in ``root`` are left alone.
    """
    root = os.fspath(root)
    params = _normalise(params)
    marker = read_marker(root)
    if (marker is not None and marker.get('builder') == builder
            and marker.get('format_version') == FORMAT_VERSION
            and marker.get('params') == params):
        return root
    entries = BUILDER_ENTRIES[builder]
    stale = set(entries)
    if marker is not None:
        stale |= set(BUILDER_ENTRIES.get(marker.get('builder'), ()))
    os.makedirs(root, exist_ok=True)
    stage = tempfile.mkdtemp(prefix='.mmkdflow_build_', dir=root)
    try:
        sizes = write(stage)
        _remove(osp.join(root, MARKER_NAME))
        for name in sorted(stale):
            _remove(osp.join(root, name))
        for name in entries:
            os.replace(osp.join(stage, name), osp.join(root, name))
        tmp_marker = osp.join(stage, MARKER_NAME)
        dump_json(
            dict(builder=builder, format_version=FORMAT_VERSION,
                 params=params, sizes=sizes), tmp_marker)
        os.replace(tmp_marker, osp.join(root, MARKER_NAME))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return root
