"""What a connector or a loss may know about the current step."""
from dataclasses import dataclass
from typing import Any, List, Optional

import torch
from mmengine.logging import MessageHub
from torch import Tensor


@dataclass
class DistillContext:
    """Per-step information handed to connectors and losses.

    Args:
        data_samples (list[Any], optional): The batch's data samples (ground
            truth), or ``None`` at inference or when the caller has none.
            Defaults to None.
        epoch (int): Current (0-based) training epoch, from MMEngine's message
            hub. Defaults to 0.
        iter (int): Current (0-based) training iteration. Defaults to 0.
        max_epochs (int, optional): Total epochs of the run, if known. Defaults
            to None.
        max_iters (int, optional): Total iterations of the run, if known.
            Defaults to None.
        training (bool): Whether the step computes losses. Defaults to True.
    """

    data_samples: Optional[List[Any]] = None
    epoch: int = 0
    iter: int = 0
    max_epochs: Optional[int] = None
    max_iters: Optional[int] = None
    training: bool = True

    @classmethod
    def current(cls, data_samples: Optional[List[Any]] = None,
                training: bool = True) -> 'DistillContext':
        """The context of the running step: epoch and iteration counters
        from MMEngine's message hub (0 outside a ``Runner``).

        Returns:
            DistillContext: The context of the running step.
        """
        hub = MessageHub.get_current_instance()
        return cls(data_samples=data_samples,
                   epoch=int(hub.get_info('epoch', 0) or 0),
                   iter=int(hub.get_info('iter', 0) or 0),
                   max_epochs=hub.get_info('max_epochs'),
                   max_iters=hub.get_info('max_iters'),
                   training=training)

    def _field_of_each(self, field: str, what: str, fix: str) -> list:
        """``data_sample.<field>`` of every sample of the batch.

        Raises:
            ValueError: Naming ``what`` the loss needs and ``fix`` (the
                model kind that provides it), when the step has no data
                samples or one lacks the field.
        """
        if not self.data_samples:
            raise ValueError(
                f'this loss needs {what}, but the step has no data samples; '
                f'use it only in training with labelled data')
        values = []
        for sample in self.data_samples:
            value = getattr(sample, field, None)
            if value is None:
                raise ValueError(
                    f'this loss needs {what} (data_sample.{field}), but got '
                    f'a {type(sample).__name__} without them; use it with '
                    f'{fix}')
            values.append(value)
        return values

    def gt_labels(self) -> Tensor:
        """Classification labels of the batch as a ``(B,)`` long tensor.

        Returns:
            Tensor: The ``(B,)`` long labels.

        Raises:
            ValueError: If there are no data samples or they carry no
                ``gt_label`` (a loss that needs labels was used on a task
                without image-level labels).
        """
        labels = self._field_of_each('gt_label', 'image-level labels',
                                     'an mmpretrain classifier')
        return torch.cat([torch.as_tensor(label).reshape(-1)[:1]
                          for label in labels]).long()

    def gt_scores(self) -> Optional[Tensor]:
        """Soft classification targets of the batch as a ``(B, K)`` float
        tensor, when every sample carries ``gt_score`` (mmpretrain's Mixup
        and CutMix batch augments set it to the mixed labels).

        Returns:
            Tensor | None: The scores, or ``None`` when some sample has
            none (then :meth:`gt_labels` holds the targets).
        """
        if not self.data_samples:
            return None
        scores = [getattr(sample, 'gt_score', None)
                  for sample in self.data_samples]
        if any(score is None for score in scores):
            return None
        return torch.stack([torch.as_tensor(score).reshape(-1)
                            for score in scores]).float()

    def gt_sem_seg(self) -> Tensor:
        """Per-pixel labels of the batch as a ``(B, H, W)`` long tensor.

        Returns:
            Tensor: The ``(B, H, W)`` long labels.

        Raises:
            ValueError: If the data samples carry no ``gt_sem_seg``.
        """
        maps = self._field_of_each('gt_sem_seg', 'per-pixel labels',
                                   'an mmseg segmentor')
        return torch.stack([seg.data.reshape(seg.data.shape[-2:])
                            for seg in maps]).long()
