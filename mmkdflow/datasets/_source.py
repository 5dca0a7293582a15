"""Source digits and their splits, shared by every embedded digits dataset.

Source data: scikit-learn's 1,797 real 8x8 handwritten digits
(``sklearn.datasets.load_digits``), which ship inside scikit-learn, so nothing
is downloaded. Every builder splits them by index into train and val with the
seed (:func:`split_source_indices`, the same split for every task), so the two
splits never share a source digit; :func:`holdout_split` adds the tuning split
carved out of the train digits.
"""
import functools
from typing import Tuple

import numpy as np

#: Number of source digits in ``sklearn.datasets.load_digits``.
NUM_SOURCE_DIGITS = 1797
#: Class names of the detection and classification datasets: digit ``d`` is
#: class index ``d`` (detection category id ``d + 1``).
DIGITS_CLASSES = tuple(str(d) for d in range(10))


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


