r"""The classifier of FM-KT's logit flows and its label loss.

In a logit flow the meta-encoder refines the student's feature map
:math:`Z` (e.g. ResNet-18's last ``512 x 7 x 7`` map) and every step's
teacher prediction :math:`\hat X_i` goes through one shared classifier:

* image classification: :math:`o_i = W\,\mathrm{GAP}(\hat X_i) + b` (global
  average pooling, then ``Linear(C, K)``);
* segmentation, per pixel (**[ext]**, our extension; the authors released
  no segmentation code): :math:`o_i[:, :, h, w] = W \hat X_i[:, :, h, w] + b`,
  the same ``Linear(C, K)`` applied at every position (a 1x1 convolution,
  like the decode head's own ``conv_seg``).

The label loss of one step is the cross-entropy of :math:`o_i` with the
ground truth: image labels for classification; for segmentation the
per-pixel labels, with :math:`o_i` bilinearly resized to the label map and
pixels labelled ``ignore_index`` (255, as in mmseg) left out, as mmseg's
decode heads compute their own loss. An optional per-class weight
``class_weight`` (mmseg's ``CrossEntropyLoss(class_weight=...)``) weights
each labelled pixel by its class, normalised by the sum of the weights of
the labelled pixels, exactly as ``F.cross_entropy(weight=...)`` does.
"""
from typing import Any, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..core import DistillContext


class FlowLogitHead(nn.Module):
    r"""``Linear(C, K)`` on the pooled (``pool=True``) or per-pixel
    (``pool=False``) flow prediction, see the module docstring.

    Args:
        channels (int): ``C``, channels of the flow state.
        num_classes (int): ``K``.
        pool (bool): Global average pooling first (image classification);
            ``False`` keeps one prediction per pixel (segmentation). Defaults
            to True.
        ignore_index (int): Label value left out of the per-pixel
            cross-entropy. Defaults to 255.
        class_weight (Sequence[float], optional): One non-negative weight per
            class for the cross-entropy (as the task head's ``loss_decode`` /
            ``loss`` ``class_weight``), or ``None`` for equal weights. Defaults
            to None.

    Raises:
        ValueError: For non-positive sizes or a ``class_weight`` of the
            wrong length or with negative entries.
    """

    def __init__(self, channels: int, num_classes: int, pool: bool = True,
                 ignore_index: int = 255,
                 class_weight: Optional[Sequence[float]] = None) -> None:
        super().__init__()
        if channels <= 0 or num_classes <= 0:
            raise ValueError(
                f'FlowLogitHead needs positive sizes, got channels='
                f'{channels}, num_classes={num_classes}')
        self.pool = bool(pool)
        self.ignore_index = int(ignore_index)
        self.fc = nn.Linear(channels, num_classes)
        weight = None
        if class_weight is not None:
            weight = torch.as_tensor(list(class_weight), dtype=torch.float32)
            if weight.shape != (num_classes, ) or bool((weight < 0).any()):
                raise ValueError(
                    f'class_weight needs {num_classes} non-negative values '
                    f'(one per class, as the decode head\'s loss_decode '
                    f'class_weight), got {list(class_weight)}')
        # not saved: a config setting, not a learned state
        self.register_buffer('class_weight', weight, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, K)`` (pooled or 2-D input) or ``(B, K, H, W)``.

        Returns:
            Tensor: Logits ``(B, K)`` or ``(B, K, H, W)``.
        """
        if x.dim() == 2:
            return self.fc(x)
        if x.dim() != 4:
            raise ValueError(f'FlowLogitHead expects (B, C) or (B, C, H, W) '
                             f'inputs, got {tuple(x.shape)}')
        if self.pool:
            return self.fc(x.mean((2, 3)))
        return self.fc(x.movedim(1, -1)).movedim(-1, 1)

    def label_targets(self, ctx: DistillContext, logits: Tensor) -> Tensor:
        """The ground truth the CE of ``logits`` compares with, read from
        the data samples once per step and moved to ``logits``' device.

        Args:
            ctx (DistillContext): The step's context, holding the labels.
            logits (Tensor): One step's logits (their shape picks the
                kind of label).

        Returns:
            Tensor: For ``(B, K)`` logits the soft targets
            ``ctx.gt_scores()`` when the batch carries them (Mixup,
            CutMix), else the labels ``ctx.gt_labels()``; for
            ``(B, K, h, w)`` logits the label map ``ctx.gt_sem_seg()``.
        """
        if logits.dim() == 2:
            scores = ctx.gt_scores()
            labels = ctx.gt_labels() if scores is None else scores
        else:
            labels = ctx.gt_sem_seg()
        return labels.to(logits.device)

    def label_loss(self, logits: Tensor, ctx: DistillContext,
                   label_smoothing: float = 0.,
                   targets: Optional[Tensor] = None) -> Tensor:
        r"""Cross-entropy of one step's logits with the ground truth.

        ``(B, K)`` logits: :math:`\mathrm{CE}(o, y)` with the image labels,
        or with the soft targets when the batch carries them (Mixup,
        CutMix), as mmpretrain's own classification loss does.
        ``(B, K, h, w)`` logits: :math:`\frac{1}{|P|}\sum_{p \in P}
        \mathrm{CE}(\mathrm{up}(o)_p, y_p)` over the labelled pixels
        :math:`P`, :math:`\mathrm{up}` the bilinear resize to the label
        map. Computed in float32.

        Args:
            logits (Tensor): One step's logits.
            ctx (DistillContext): The step's context, holding the labels.
            label_smoothing (float): Of the cross-entropy (0.1 in OFM-KT).
                Defaults to 0.0.
            targets (Tensor, optional): :meth:`label_targets`, when the
                caller read them once for several steps. Defaults to None
                (read here).

        Returns:
            Tensor: The cross-entropy, a scalar.
        """
        logits = logits.float()
        if targets is None:
            targets = self.label_targets(ctx, logits)
        weight = self.class_weight
        if logits.dim() == 2:
            return F.cross_entropy(logits, targets, weight=weight,
                                   label_smoothing=label_smoothing)
        if logits.shape[-2:] != targets.shape[-2:]:
            logits = F.interpolate(logits, size=targets.shape[-2:],
                                   mode='bilinear', align_corners=False)
        return F.cross_entropy(logits, targets, weight=weight,
                               ignore_index=self.ignore_index,
                               label_smoothing=label_smoothing)


def own_logits(replaced: Any, expected: Optional[Tensor] = None
               ) -> Tensor:
    """The student's own classifier output :math:`fc_0(Z)`, which the
    distiller hands to a connector that replaces a later module
    (``replace='head.fc'``) as its ``replaced`` argument.

    Args:
        replaced (Any): The replaced module's own output (``None`` when the
            point replaces no later module).
        expected (Tensor, optional): A tensor of the shape the logits must have
            (the flow's mean logits), checked when given. Defaults to None.

    Returns:
        Tensor: The student's own logits.

    Raises:
        ValueError: If there is no replaced output (the point was not
            configured with ``replace='head.fc'`` or the like), it is not
            one tensor, or its shape differs from ``expected``.
    """
    own = replaced
    if own is None:
        raise ValueError(
            "FM-KT-Theta on a logit flow distils into the student's own "
            "classifier fc0(Z), but the distiller handed no replaced output; "
            "configure the point with replace='<the classifier module>' "
            "(e.g. student='backbone', replace='head.fc' for mmpretrain, "
            "student='decode_head.bottleneck', replace='decode_head.conv_seg'"
            ' for mmseg)')
    if not isinstance(own, Tensor):
        raise ValueError(
            f'FM-KT-Theta needs the replaced module to output one logits '
            f'tensor, got a {type(own).__name__}')
    if expected is not None and own.shape != expected.shape:
        raise ValueError(
            f"FM-KT-Theta: the student's own logits have shape "
            f'{tuple(own.shape)} but the flow gives {tuple(expected.shape)}; '
            f'set num_classes to the classifier output size')
    return own
