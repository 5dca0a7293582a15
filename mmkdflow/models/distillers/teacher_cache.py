"""Per-image cache of the frozen teacher's tensors.

The teacher is frozen and runs in eval mode, so for a train pipeline without
random transforms it computes the same tensors for an image at every epoch.
:class:`TeacherOutputCache` keeps them (on CPU) after the first epoch, and
the distiller skips the teacher's forward for a batch whose images are all
cached. The values are the teacher's own: equal to a fresh forward up to
float rounding (a batched convolution may round differently for another
batch composition, ~1e-7 relative).

It is only valid when an image reaches the model identically at every
epoch. Two guards make a violation loud instead of silently training on
stale targets:

* :func:`random_transforms` names the random transforms of a train
  pipeline; ``SafeTrainingHook`` refuses ``teacher_cache`` when there is one;
* every cached image keeps a fingerprint of its preprocessed input (the sum
  and a position-weighted sum, in float64); a cached image that comes back
  different raises, naming the image.
"""
import warnings
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

import torch
from torch import Tensor

#: Transforms that draw random numbers although their name does not say
#: ``Random`` (mmcv / mmdet / mmseg / mmpretrain names).
RANDOM_TRANSFORMS = frozenset({
    'PhotoMetricDistortion', 'RandAugment', 'AutoAugment', 'Mosaic',
    'MixUp', 'CutMix', 'CopyPaste', 'Albu', 'Albumentations', 'ColorJitter',
    'GaussianBlur', 'Lighting', 'TrivialAugment', 'CachedMosaic',
    'CachedMixUp', 'YOLOXHSVRandomAug', 'BEiTMaskGenerator',
    'SimMIMMaskGenerator', 'RandomErasing'})

_Key = Tuple[str, Tuple[int, ...]]


def random_transforms(pipeline: Iterable[dict]) -> List[str]:
    """The types of the transforms in ``pipeline`` that are random: a name
    containing ``Random`` or ``Rand`` (``RandomFlip``, ``RandomResize``,
    ``RandomChoiceResize``...) or one of :data:`RANDOM_TRANSFORMS`;
    wrappers (``RandomApply``, ``TransformBroadcaster``...) are searched
    through their ``transforms``.

    Returns:
        list[str]: The types of the random transforms.
    """
    found = []
    for transform in pipeline or ():
        if not isinstance(transform, dict):
            found.append(type(transform).__name__)  # cannot inspect: assume
            continue
        name = str(transform.get('type', '')).split('.')[-1]
        if 'Rand' in name or name in RANDOM_TRANSFORMS:
            found.append(name)
        inner = transform.get('transforms')
        if inner:
            flat = [t for group in inner for t in (
                group if isinstance(group, (list, tuple)) else [group])]
            found += random_transforms(flat)
    return found


def input_fingerprints(inputs: Tensor) -> Tensor:
    """``(B, 2)`` float64: the sum of each sample's preprocessed input and
    its sum weighted by the flat position (so a flip or a shift changes it
    even when the plain sum does not).

    Returns:
        Tensor: The ``(B, 2)`` float64 fingerprints.
    """
    flat = inputs.detach().flatten(1).to(torch.float64)
    ramp = torch.linspace(0.0, 1.0, flat.shape[1], dtype=torch.float64,
                          device=flat.device)
    return torch.stack([flat.sum(1), flat @ ramp], dim=1).cpu()


class TeacherOutputCache:
    """Teacher tensors per image, for a deterministic train pipeline.

    Args:
        key (str): The data-sample metainfo field that names an image
            (``'img_path'`` for mmdet, mmseg and mmpretrain datasets read
            from files). Defaults to 'img_path'.
        max_gb (float): Stop adding entries beyond this many GB of cached
            tensors (with one warning); batches with uncached images then run
            the teacher as usual. COCO-size inputs cost tens of MB per image.
            Defaults to 4.0.

    Raises:
        ValueError: For a non-positive ``max_gb``.
    """

    def __init__(self, key: str = 'img_path', max_gb: float = 4.0) -> None:
        if not max_gb > 0:
            raise ValueError(f'teacher_cache max_gb must be > 0, got '
                             f'{max_gb}')
        self.key = key
        self.max_bytes = int(max_gb * 2**30)
        self.bytes = 0
        self.full = False
        self._entries: Dict[_Key, Tuple[Tensor, Dict[str, List[Tensor]]]] = {}
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _keys(self, inputs: Tensor, data_samples: Sequence) -> List[_Key]:
        shape = tuple(inputs.shape[1:])
        keys = []
        for sample in data_samples or ():
            name = sample.metainfo.get(self.key) \
                if hasattr(sample, 'metainfo') else None
            if name is None:
                raise ValueError(
                    f'teacher_cache needs data_sample.metainfo[{self.key!r}] '
                    f'to tell images apart, but a {type(sample).__name__} '
                    f'has none; set teacher_cache=dict(key=...) to a '
                    f'metainfo field that names the image (e.g. img_id), '
                    f'or turn the cache off')
            keys.append((str(name), shape))
        if len(keys) != inputs.shape[0]:
            raise ValueError(
                f'teacher_cache needs one data sample per input, got '
                f'{len(keys)} for a batch of {inputs.shape[0]}')
        return keys

    def _check_same_inputs(self, keys: List[_Key], prints: Tensor,
                           cached: List[bool]) -> None:
        """Compare the fingerprints of the cached images of a batch with
        those they were cached with, in one batched comparison."""
        hits = [i for i, hit in enumerate(cached) if hit]
        if not hits:
            return
        before = torch.stack([self._entries[keys[i]][0] for i in hits])
        same = torch.isclose(before, prints[hits], rtol=1e-9,
                             atol=1e-9).all(dim=1)
        if bool(same.all()):
            return
        bad = int((~same).nonzero()[0])
        key = keys[hits[bad]]
        raise RuntimeError(
            f'teacher_cache: image {key[0]!r} reached the model with '
            f'another input than when its teacher tensors were cached '
            f'(fingerprint {before[bad].tolist()} -> '
            f'{prints[hits[bad]].tolist()}): the train pipeline transforms '
            f'it randomly, so cached teacher tensors would be stale. Remove '
            f'teacher_cache from the model, or the random transforms from '
            f'the pipeline')

    def serve(self, inputs: Tensor, data_samples: Sequence,
              compute: Callable[[], Dict[str, List[Tensor]]]
              ) -> Dict[str, List[Tensor]]:
        """The teacher tensors of a batch: stacked from the cache (in batch
        order, on ``inputs.device``) when every image is cached, else
        ``compute()`` (the teacher's forward), whose per-image slices are
        then kept. Keys and input fingerprints are computed once per call.

        Returns:
            dict[str, list[Tensor]]: ``{point name: teacher tensors}`` of the
            batch.

        Raises:
            RuntimeError: A cached image arrives with another input.
        """
        keys = self._keys(inputs, data_samples)
        prints = input_fingerprints(inputs)
        cached = [key in self._entries for key in keys]
        self._check_same_inputs(keys, prints, cached)
        if all(cached):
            self.hits += 1
            first = self._entries[keys[0]][1]
            return {
                name: [torch.stack([self._entries[k][1][name][level]
                                    for k in keys]).to(inputs.device)
                       for level in range(len(levels))]
                for name, levels in first.items()}
        self.misses += 1
        tensors = compute()
        if not self.full:
            self._store(keys, prints, cached, tensors)
        return tensors

    def _store(self, keys: List[_Key], prints: Tensor, cached: List[bool],
               tensors: Dict[str, List[Tensor]]) -> None:
        """Keep the per-image slices of the images not cached yet (one
        device-to-host copy per tensor, then one clone per image, so no
        entry keeps the whole batch alive)."""
        for name, levels in tensors.items():
            for t in levels:
                if t.dim() == 0 or t.shape[0] != len(keys):
                    raise ValueError(
                        f'teacher_cache keeps per-image slices, but the '
                        f'teacher tensor of point {name!r} has shape '
                        f'{tuple(t.shape)} for a batch of {len(keys)}: it '
                        f'is not batch-first; turn the cache off for this '
                        f'model')
        on_host = {name: [t.detach().cpu() for t in levels]
                   for name, levels in tensors.items()}
        for index, (key, fingerprint) in enumerate(zip(keys, prints)):
            if cached[index] or key in self._entries:
                continue
            entry = {name: [t[index].clone() for t in levels]
                     for name, levels in on_host.items()}
            size = sum(t.numel() * t.element_size()
                       for levels in entry.values() for t in levels)
            if self.bytes + size > self.max_bytes:
                self.full = True
                warnings.warn(
                    f'teacher_cache is full ({self.bytes / 2**30:.2f} GB, '
                    f'{len(self)} images, max_gb='
                    f'{self.max_bytes / 2**30:g}): the other images run the '
                    f'teacher at every epoch; raise max_gb if memory allows')
                return
            self._entries[key] = (fingerprint, entry)
            self.bytes += size


def _pipelines(dataset_cfg) -> Iterable[list]:
    """Every ``pipeline`` of a dataset config, through dataset wrappers
    (``dataset``, ``datasets``)."""
    if not isinstance(dataset_cfg, dict):
        return
    if dataset_cfg.get('pipeline'):
        yield dataset_cfg['pipeline']
    yield from _pipelines(dataset_cfg.get('dataset'))
    for inner in dataset_cfg.get('datasets') or ():
        yield from _pipelines(inner)


def check_teacher_cache(cfg) -> None:
    """Refuse ``model.teacher_cache`` for a train pipeline with random
    transforms (called by ``SafeTrainingHook`` before training starts).

    Raises:
        ValueError: Naming the random transforms and the two ways out.
    """
    model = cfg.get('model') or {}
    if not model.get('teacher_cache'):
        return
    loader = cfg.get('train_dataloader') or {}
    found = [name for pipeline in _pipelines(loader.get('dataset'))
             for name in random_transforms(pipeline)]
    if found:
        raise ValueError(
            f'model.teacher_cache reuses the teacher\'s tensors of an image '
            f'from one epoch to the next, but the train pipeline transforms '
            f'images randomly ({", ".join(found)}), so the cached tensors '
            f'would not match the student\'s input. Remove teacher_cache, '
            f'or the random transforms')
