"""FM-KT feature flow: a flow from each student feature to the teacher's."""
from typing import Any, Dict, List, Optional, Sequence, Union

import torch.nn as nn
from torch import Tensor

from mmkdflow.registry import MODELS
from ..flows.euler_flow import EulerFlow
from ..core import DistillContext, check_nonnegative_weight
from .base import ConnectorOutput
from .fmkt_base import BaseFMKTConnector, flow_options


@MODELS.register_module()
class FMKTFeatureConnector(BaseFMKTConnector):
    r"""FM-KT on features (Shao et al., 2024), e.g. on every FPN level.

    For each selected student tensor :math:`Z_k` of weight :math:`w_k > 0`
    (``level_weights``) the serial N-step Euler sampler runs :math:`v_i =
    E_k(x + \text{emb}(t_i))`, :math:`\hat X_i = Z_k - v_i` (rectified
    flow), :math:`x \leftarrow x - v_i / N` for :math:`t_i = i/N`, i = N..1,
    all with gradients; the teacher is only a loss target. Then

    .. math::

        \mathcal{L}_{flow,k} = \frac{w_k}{N} \sum_{i=1}^N
            D(P(\hat X_i), X_{T,k})

    with D = ``distance`` (PKD in the detection recipes) and P =
    ``teacher_proj`` (identity by default). The returned tensor is
    :math:`\frac1N\sum_i \hat X_i` (for rectified flow also the Euler end
    point), which with ``replace=True`` replaces that level for the
    student's head in training and inference alike (inference runs the
    same loop with ``num_steps_test`` steps; the released detection code
    instead feeds every eval step the unchanged Z, which we deliberately do
    not copy).

    A level of weight 0 has no flow and no module at all: its raw tensor is
    returned (in training, inference and the export), as in the released
    code, so the detection loss on it trains nothing of the flow.

    ``theta=True`` (FM-KT-Theta for features, **[ext]**): the raw
    :math:`Z_k` is returned, so the deployed student is the vanilla one (at
    inference the flow does not even run), and

    .. math::

        \mathcal{L}_{theta,k} = w_k\,\theta\,D(Z_k,
            \mathrm{sg}(\tfrac1N \textstyle\sum_i \hat X_i))

    (``theta`` = ``theta_weight``) distils the flow's refined feature back
    into the raw level, next to :math:`\mathcal{L}_{flow,k}` which trains
    the flow. With the identity start it is 0 at initialisation.

    At initialisation the flow is the identity (``init='identity'``, see
    :class:`~mmkdflow.models.flows.EulerFlow`); ``init='released'``
    restores the released initialisation.

    The EMA of the flow (detection recipes, decay 0.999) is kept by
    :class:`~mmkdflow.engine.hooks.ConnectorEMAHook`.

    Args:
        channels: Student channels C (of every selected tensor).
        meta_encoder: ``'convnext'``, ``'conv'``, ``'resconv'``, ``'mlp'``,
            ``'transformer'``, ``'conv_det'``, a registered name, a config
            or a module (e.g. a test stub; one flow only).
        schedule: ``'rectified'``, ``'vp'``, ``'ve'`` or a config.
        num_steps: N in training.
        num_steps_test: N at inference; ``None``: ``num_steps``.
        num_steps_choices: If set, N is drawn uniformly from it at each
            training call (e.g. ``(1, 2, 4, 8, 16)``).
        distance: Loss config D, applied per step.
        level_weights: Weight :math:`w_k >= 0` per selected tensor; a level
            of weight 0 gets no flow.
        num_levels: Number of selected tensors when ``level_weights`` is not
            given (weight 1 each).
        share_across_levels: One flow for every level. ``None`` (default):
            one flow per level when the levels are known (``level_weights``
            or ``num_levels``; the released detection recipe), else one
            shared flow for however many tensors come in.
        dirac_ratio: Fraction of the batch kept in one-to-one pairs.
        teacher_proj: For teacher channels != C: an int (teacher channels;
            a 1x1 conv) or ``dict(out_channels=..., with_bn=False)``, applied
            to each prediction for the loss only (the flow, its output and
            the student's head stay in C channels).
        theta: FM-KT-Theta, see above.
        theta_weight: Extra factor on ``loss_theta``.
        anchor: ``'start'`` (released) or ``'state'``.
        time_embed: ``'linear'`` (default) or ``'mlp'``.
        init: ``'identity'`` (default) or ``'released'``.
        checkpoint: Recompute each Euler step's meta-encoder activations in
            the backward pass (flow memory independent of N, for one more
            meta-encoder forward per step).
        compile: ``torch.compile`` the meta-encoder call (``True`` or a dict
            of ``torch.compile`` options).
        init_cfg: MMEngine initialisation config.
    """

    def __init__(self,
                 channels: int,
                 meta_encoder: Union[str, dict, nn.Module] = 'convnext',
                 schedule: Union[str, dict] = 'rectified',
                 num_steps: int = 4,
                 num_steps_test: Optional[int] = None,
                 num_steps_choices: Optional[Sequence[int]] = None,
                 distance: Optional[dict] = dict(
                     type='PKDLoss', loss_weight=1.0),
                 level_weights: Optional[Sequence[float]] = None,
                 num_levels: Optional[int] = None,
                 share_across_levels: Optional[bool] = None,
                 dirac_ratio: float = 1.0,
                 teacher_proj: Optional[Union[int, dict]] = None,
                 theta: bool = False,
                 theta_weight: float = 1.0,
                 anchor: str = 'start',
                 time_embed: str = 'linear',
                 init: str = 'identity',
                 checkpoint: bool = False,
                 compile: Union[bool, dict] = False,
                 init_cfg: Optional[dict] = None) -> None:
        weights = None if level_weights is None else [
            check_nonnegative_weight(w, f'level_weights[{k}]',
                                     type(self).__name__)
            for k, w in enumerate(level_weights)]
        if weights is not None and num_levels is not None \
                and len(weights) != num_levels:
            raise ValueError(f'level_weights has {len(weights)} entries but '
                             f'num_levels={num_levels}; give one weight per '
                             f'selected tensor')
        if num_levels is not None and int(num_levels) < 1:
            raise ValueError(f'num_levels must be >= 1, got {num_levels}')
        if weights is None and num_levels is not None:
            weights = [1.] * int(num_levels)
        shared = weights is None if share_across_levels is None \
            else bool(share_across_levels)
        levels = None if weights is None else [
            k for k, w in enumerate(weights) if w > 0]
        if levels is None and not shared:
            raise ValueError(
                'share_across_levels=False (one flow per level) needs the '
                'number of levels: set level_weights or num_levels')
        flows = EulerFlow(
            channels, levels=levels, shared=shared, time_embed=time_embed,
            **flow_options(meta_encoder, schedule, num_steps,
                           num_steps_test, num_steps_choices, anchor, init,
                           checkpoint, compile))
        super().__init__(flows, distance, dirac_ratio, init_cfg)
        self.level_weights = weights
        self.theta = bool(theta)
        self.theta_weight = check_nonnegative_weight(
            theta_weight, 'theta_weight', type(self).__name__)
        self.projs = None
        if teacher_proj is not None:
            proj = teacher_proj if isinstance(teacher_proj, dict) else dict(
                out_channels=teacher_proj)
            keys = ['0'] if shared else [str(k) for k in levels]
            self.projs = nn.ModuleDict(
                (key, _make_proj(channels, **proj)) for key in keys)

    @property
    def identity_at_inference(self) -> bool:
        """FM-KT-Theta deploys the vanilla student."""
        return self.theta

    def project(self, x: Tensor, level: int) -> Tensor:
        """Map a prediction to the teacher's channels (identity if no
        ``teacher_proj``)."""
        if self.projs is None:
            return x
        proj = self.projs['0' if self.flows.shared else str(level)]
        return proj(x[..., None, None]).flatten(1) if x.dim() == 2 \
            else proj(x)

    def weights_for(self, num_inputs: int) -> List[float]:
        """The level weights for ``num_inputs`` selected tensors."""
        if self.level_weights is None:
            return [1.] * num_inputs
        if len(self.level_weights) != num_inputs:
            raise ValueError(
                f'{type(self).__name__} got {num_inputs} student tensors but '
                f'was built for {len(self.level_weights)} (level_weights / '
                f'num_levels); give one weight per selected index')
        return self.level_weights

    def forward(self, student: List[Tensor], teacher: Optional[List[Tensor]],
                ctx: DistillContext, replaced: Any = None
                ) -> ConnectorOutput:
        weights = self.weights_for(len(student))
        self.check_channels(student)
        training = teacher is not None
        if self.theta and not training:
            return ConnectorOutput(student=list(student))  # vanilla student
        if training:
            if len(teacher) != len(student):
                raise ValueError(f'{type(self).__name__} got {len(student)} '
                                 f'student but {len(teacher)} teacher '
                                 f'tensors')
            teacher = self.decouple(teacher, student[0].shape[0])
        num_steps = self.flows.draw_num_steps(training)
        table = self.flows.time_embeddings(num_steps, student[0].dim())
        outputs, losses = [], {}
        for k, z in enumerate(student):
            if not self.has_flow(k):  # weight 0: no flow, the raw tensor
                outputs.append(z)
                continue
            traj = self.flows(z, k, num_steps, table)
            # back to the default layout for the student's head (e.g.
            # mmcv's deformable convs refuse channels-last inputs)
            out = traj.mean.contiguous()
            outputs.append(z if self.theta else out)
            if training:
                level_losses = self._level_losses(
                    z, traj.predictions, out, teacher[k], k, weights[k], ctx)
                for name, value in level_losses.items():
                    losses[name if len(student) == 1 else f'{name}_l{k}'] = \
                        value
        return ConnectorOutput(student=outputs, losses=losses)

    def _level_losses(self, z: Tensor, preds: List[Tensor], out: Tensor,
                      target: Tensor, level: int, weight: float,
                      ctx: DistillContext) -> Dict[str, Tensor]:
        preds = [self.project(p, level) for p in preds]
        if preds[0].shape[1] != target.shape[1]:
            raise ValueError(
                f'{type(self).__name__}: predictions have '
                f'{preds[0].shape[1]} channels but the teacher has '
                f'{target.shape[1]}; set teacher_proj={target.shape[1]}')
        losses = dict(loss_flow=weight / len(preds) *
                      self.distance.forward_steps(preds, target, ctx))
        if self.theta:
            losses['loss_theta'] = weight * self.theta_weight * \
                self.distance(z, out.detach(), ctx)
        return losses


def _make_proj(in_channels: int, out_channels: int,
               with_bn: bool = False) -> nn.Module:
    """1x1 conv (+ BatchNorm) from the student's to the teacher's channels."""
    conv = nn.Conv2d(in_channels, out_channels, 1, bias=not with_bn)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels)) if with_bn \
        else conv
