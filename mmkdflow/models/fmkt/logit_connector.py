"""FM-KT logit flow: a flow on the student's last feature map, read out by
a classifier, matched to the teacher's logits (or online, OFM-KT)."""
from typing import Any, Dict, List, Optional, Sequence, Union

import torch.nn as nn
from torch import Tensor

from mmkdflow.registry import MODELS
from ..connectors.base import ConnectorOutput
from ..core import DistillContext, check_nonnegative_weight
from .base import FMKTConnector
from .logit_head import FlowLogitHead, own_logits


@MODELS.register_module()
class FMKTLogitConnector(FMKTConnector):
    r"""FM-KT logit flow (Shao et al., 2024): classification, and per pixel
    for segmentation (**[ext]**); steps (1)-(7) and (9)-(11) of
    :mod:`mmkdflow.models.fmkt`.

    The flow refines the student's feature map :math:`Z` (e.g. ResNet-18's
    last map) with the serial Euler sampler; every prediction goes through
    one classifier, :math:`o_i = fc(\text{pool}(\hat X_i))` (a
    ``Linear(C, num_classes)``, :class:`~mmkdflow.models.fmkt.FlowLogitHead`;
    ``head_pool=False`` applies it per pixel). With w = ``flow_weight``:

    .. math::

        \mathcal{L}_{flow} = \frac{w}{N}\sum_i D(o_i, y_T), \qquad
        \mathcal{L}_{ce} = \frac{w}{N}\,c\sum_i CE(o_i, y)

    (c = ``ce_weight``; labels from the context). The returned tensor is
    :math:`\frac1N\sum_i o_i` (logits), which replaces the student's own
    classifier output when the point reads ``student='backbone'`` with
    ``replace='head.fc'`` (mmseg: ``student='decode_head.bottleneck'``,
    ``replace='decode_head.conv_seg'``). Configs then set the distiller's
    ``student_loss_weight=0`` (the released recipe has no CE or KD outside
    the flow).

    * ``online=True`` (OFM-KT, no teacher): ``loss_ce`` uses label
      smoothing 0.1 and :math:`\mathcal{L}_{flow} = \frac{w}{N}\sum_i
      D(o_i, \mathrm{sg}(\frac1N\sum_j o_j))`.
    * ``theta=True`` (FM-KT-Theta for logits): the student's own classifier
      output :math:`fc_0(Z)` (the ``replaced`` argument: the original
      output of the replaced ``head.fc``) is returned unchanged, so the
      deployed student is the vanilla one and at inference the flow does
      not run.
      The flow is trained as above and :math:`\mathcal{L}_{theta} = w\,
      \theta\,D(fc_0(Z), \mathrm{sg}(\frac1N\sum_i o_i))` distils its
      ensemble into :math:`fc_0`. The paper's other half, :math:`w\,
      CE(fc_0(Z), y)`, is the student's own loss: such configs keep
      ``student_loss_weight = w``.

    At initialisation the flow is the identity (``init='identity'``, see
    :class:`~mmkdflow.models.fmkt.EulerFlow`), so every :math:`o_i` is the
    flow classifier on the raw :math:`Z`; ``init='released'`` restores the
    released initialisation (there the ``mlp`` encoder ends in a LayerNorm
    and the velocity is a unit-RMS vector per pixel at initialisation).

    Args:
        channels (int): C, channels of :math:`Z`.
        num_classes (int): Classes K of the flow classifier.
        meta_encoder (str | dict | nn.Module): Meta-encoder (``'mlp'`` for the
            CIFAR/ResNet recipes, ``'transformer'`` for ImageNet, ``'conv'``
            for segmentation). Defaults to 'mlp'.
        distance (dict, optional): Loss config D, applied per step. Defaults to
            dict(type='DISTLoss', beta=2.0, gamma=2.0, tau=1.0).
        flow_weight (float): w. Defaults to 1.0.
        head_pool (bool): ``True``: pool before the classifier (image
            classification); ``False``: per-pixel classifier and CE on the
            ``gt_sem_seg`` labels (segmentation, **[ext]**). Defaults to True.
        ce_weight (float): c, factor on ``loss_ce``. Defaults to 1.0.
        online (bool): OFM-KT. Defaults to False.
        label_smoothing (float, optional): Of ``loss_ce``; ``None``: 0.1
            online, else 0. Defaults to None.
        class_weight (Sequence[float], optional): Per-class weights of
            ``loss_ce`` (e.g. the decode head's ``loss_decode.class_weight``
            when the flow replaces its loss); ``None``: equal weights. Defaults
            to None.
        theta (bool): FM-KT-Theta for logits, see above. Defaults to False.
        theta_weight (float): Extra factor on ``loss_theta``. Defaults to 1.0.
        num_steps (int): N in training (8 in the released recipes). Defaults to
            8.
        time_embed (str): ``'mlp'`` or ``'linear'``. Defaults to
            'mlp'.
        **kwargs: Of :class:`~mmkdflow.models.fmkt.FMKTConnector`: pair
            decoupling, ``init_cfg`` and the flow's other settings.
    """

    def __init__(self,
                 channels: int,
                 num_classes: int,
                 meta_encoder: Union[str, dict, nn.Module] = 'mlp',
                 distance: Optional[dict] = dict(
                     type='DISTLoss', beta=2.0, gamma=2.0, tau=1.0),
                 flow_weight: float = 1.0,
                 head_pool: bool = True,
                 ce_weight: float = 1.0,
                 online: bool = False,
                 label_smoothing: Optional[float] = None,
                 class_weight: Optional[Sequence[float]] = None,
                 theta: bool = False,
                 theta_weight: float = 1.0,
                 num_steps: int = 8,
                 time_embed: str = 'mlp',
                 **kwargs: Any) -> None:
        if not num_classes or int(num_classes) < 1:
            raise ValueError(f'{type(self).__name__} needs num_classes >= 1 '
                             f'(the classifier output size), got '
                             f'{num_classes}')
        if online and theta:
            raise ValueError('online (OFM-KT) and theta (FM-KT-Theta) do not '
                             'combine: OFM-KT has no teacher to distil from')
        super().__init__(channels, distance=distance, levels=(0, ),
                         shared=True, meta_encoder=meta_encoder,
                         num_steps=num_steps, time_embed=time_embed,
                         **kwargs)
        self.flow_weight = check_nonnegative_weight(
            flow_weight, 'flow_weight', type(self).__name__)
        self.ce_weight = check_nonnegative_weight(
            ce_weight, 'ce_weight', type(self).__name__)
        self.theta_weight = check_nonnegative_weight(
            theta_weight, 'theta_weight', type(self).__name__)
        self.online, self.theta = bool(online), bool(theta)
        self.label_smoothing = (0.1 if online else 0.) \
            if label_smoothing is None else float(label_smoothing)
        if not 0. <= self.label_smoothing < 1.:
            raise ValueError(f'label_smoothing must be in [0, 1), got '
                             f'{label_smoothing}')
        self.logit_head = FlowLogitHead(channels, num_classes, head_pool,
                                        class_weight=class_weight)

    def check_num_inputs(self, num_inputs: int) -> None:
        """One student tensor: the last feature map."""
        if num_inputs != 1:
            raise ValueError(
                f'{type(self).__name__} takes one student tensor (the last '
                f'feature map), got {num_inputs}; select one with '
                f'student_index')

    def classify(self, x: Tensor) -> Tensor:
        """The flow classifier (pooled or per-pixel ``Linear(C, K)``).

        Returns:
            Tensor: The logits ``(B, K)`` or ``(B, K, H, W)``.
        """
        return self.logit_head(x)

    def forward(self, student: List[Tensor], teacher: Optional[List[Tensor]],
                ctx: DistillContext, replaced: Any = None
                ) -> ConnectorOutput:
        self.check_num_inputs(len(student))
        self.check_channels(student)
        z = student[0]
        if z.dim() == 2:
            # a (B, C) vector (a ViT class token) as a 1 x 1 map; the
            # released DeiT code expands it to 7 x 7 equal pixels, which
            # per-pixel encoders (mlp) and the pooled classifier map to
            # the same logits
            z = z[:, :, None, None]
        training = teacher is not None or (self.online and ctx.training)
        own = own_logits(replaced) if self.theta else None
        if self.theta and not training:
            return ConnectorOutput(student=[own])  # vanilla fc0(Z)
        target = None
        if teacher is not None:
            if len(teacher) != 1:
                raise ValueError(f'{type(self).__name__} takes one teacher '
                                 f'tensor (logits), got {len(teacher)}')
            target = self.decouple(teacher)[0]
        num_steps = self.flows.draw_num_steps(training)
        preds = [self.classify(p) for p in self.flows(z, 0, num_steps)
                 .predictions]
        out = sum(preds[1:], preds[0]) / num_steps
        if own is not None:
            own_logits(replaced, expected=out)  # shape check
        losses = self._losses(own, preds, out, target, ctx) if training \
            else {}
        return ConnectorOutput(student=[out if own is None else own],
                               losses=losses)

    def _losses(self, own: Optional[Tensor], preds: List[Tensor], out: Tensor,
                target: Optional[Tensor],
                ctx: DistillContext) -> Dict[str, Tensor]:
        if target is not None and target.shape != out.shape:
            raise ValueError(
                f'{type(self).__name__}: the flow gives logits of shape '
                f'{tuple(out.shape)} but the teacher tensor has shape '
                f'{tuple(target.shape)}; read teacher logits of the same '
                f'size (num_classes, and resolution per pixel)')
        step_w = self.flow_weight / len(preds)
        goal = out.detach() if self.online else target
        labels = self.logit_head.label_targets(ctx, preds[0])
        losses = dict(
            loss_flow=step_w * self.distance.forward_steps(preds, goal, ctx),
            loss_ce=step_w * self.ce_weight * sum(
                self.logit_head.label_loss(o, ctx, self.label_smoothing,
                                           labels) for o in preds))
        if self.theta:
            losses['loss_theta'] = self.flow_weight * self.theta_weight * \
                self.distance(own, out.detach(), ctx)
        return losses
