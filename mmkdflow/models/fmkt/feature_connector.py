"""FM-KT feature flow: a flow from each student feature to the teacher's."""
from typing import Any, Dict, List, Optional, Sequence, Union

import torch.nn as nn
from torch import Tensor

from mmkdflow.registry import MODELS
from ..connectors.adapters import ChannelProjection
from ..connectors.base import ConnectorOutput
from ..core import DistillContext, check_nonnegative_weight
from .base import FMKTConnector


@MODELS.register_module()
class FMKTFeatureConnector(FMKTConnector):
    r"""FM-KT on features (Shao et al., 2024), e.g. on every FPN level:
    steps (1)-(8) and (11) of :mod:`mmkdflow.models.fmkt`.

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

    The EMA of the flow (detection recipes, decay 0.999) is kept by
    :class:`~mmkdflow.engine.hooks.ConnectorEMAHook`.

    Args:
        channels (int): Student channels C (of every selected tensor).
        meta_encoder (str | dict | nn.Module): ``'convnext'``, ``'conv'``,
            ``'resconv'``, ``'mlp'``, ``'transformer'``, ``'conv_det'``, a
            registered name, a config or a module (e.g. a test stub; one flow
            only). Defaults to 'convnext'.
        distance (dict, optional): Loss config D, applied per step. Defaults to
            dict(type='PKDLoss', loss_weight=1.0).
        level_weights (Sequence[float], optional): Weight :math:`w_k >= 0` per
            selected tensor; a level of weight 0 gets no flow. Its length must
            be the number of indices the distillation point selects (checked
            when the distiller is built, :meth:`check_num_inputs`). Defaults to
            None.
        num_levels (int, optional): Number of selected tensors when
            ``level_weights`` is not given (weight 1 each). Defaults to None.
        share_across_levels (bool, optional): One flow for every level.
            ``None`` (default): one flow per level when the levels are known
            (``level_weights`` or ``num_levels``; the released detection
            recipe), else one shared flow for however many tensors come in.
            Defaults to None.
        teacher_proj (int | dict, optional): For teacher channels != C: an int
            (teacher channels; a 1x1 conv) or ``dict(out_channels=...,
            with_bn=False)``, a
            :class:`~mmkdflow.models.connectors.ChannelProjection` applied to
            each prediction for the loss only (the flow, its output and the
            student's head stay in C channels). Defaults to None.
        theta (bool): FM-KT-Theta, see above. Defaults to False.
        theta_weight (float): Extra factor on ``loss_theta``. Defaults to 1.0.
        num_steps (int): N in training (4 in the detection recipes). Defaults
            to 4.
        time_embed (str): ``'linear'`` or ``'mlp'``. Defaults to
            'linear'.
        **kwargs: Of :class:`~mmkdflow.models.fmkt.FMKTConnector`: pair
            decoupling, ``init_cfg`` and the flow's other settings.
    """

    def __init__(self,
                 channels: int,
                 meta_encoder: Union[str, dict, nn.Module] = 'convnext',
                 distance: Optional[dict] = dict(
                     type='PKDLoss', loss_weight=1.0),
                 level_weights: Optional[Sequence[float]] = None,
                 num_levels: Optional[int] = None,
                 share_across_levels: Optional[bool] = None,
                 teacher_proj: Optional[Union[int, dict]] = None,
                 theta: bool = False,
                 theta_weight: float = 1.0,
                 num_steps: int = 4,
                 time_embed: str = 'linear',
                 **kwargs: Any) -> None:
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
        super().__init__(channels, distance=distance, levels=levels,
                         shared=shared, meta_encoder=meta_encoder,
                         num_steps=num_steps, time_embed=time_embed,
                         **kwargs)
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
                (key, ChannelProjection(channels, **proj)) for key in keys)

    def project(self, x: Tensor, level: int) -> Tensor:
        """Map a prediction to the teacher's channels (identity if no
        ``teacher_proj``).

        Returns:
            Tensor: The prediction in the teacher's channels.
        """
        if self.projs is None:
            return x
        return self.projs['0' if self.flows.shared else str(level)](x)

    def check_num_inputs(self, num_inputs: int) -> None:
        """With ``level_weights`` (or ``num_levels``): exactly that many
        student tensors."""
        if self.level_weights is not None and \
                len(self.level_weights) != num_inputs:
            raise ValueError(
                f'{type(self).__name__} gets {num_inputs} student tensors '
                f'but was built for {len(self.level_weights)} (level_weights'
                f' / num_levels); give one weight per selected index')

    def forward(self, student: List[Tensor], teacher: Optional[List[Tensor]],
                ctx: DistillContext, replaced: Any = None
                ) -> ConnectorOutput:
        self.check_num_inputs(len(student))
        self.check_channels(student)
        training = teacher is not None
        if self.theta and not training:
            return ConnectorOutput(student=list(student))  # vanilla student
        levels = [k for k in range(len(student)) if self.has_flow(k)]
        targets = {}
        if training:
            if len(teacher) != len(student):
                raise ValueError(f'{type(self).__name__} got {len(student)} '
                                 f'student but {len(teacher)} teacher '
                                 f'tensors')
            # only the levels with a flow have targets (and draws)
            targets = dict(zip(levels, self.decouple(
                [teacher[k] for k in levels])))
        num_steps = self.flows.draw_num_steps(training)
        table = self.flows.time_embeddings(num_steps, student[0].dim())
        weights = self.level_weights or [1.] * len(student)
        outputs, losses = list(student), {}
        for k in levels:
            z = student[k]
            traj = self.flows(z, k, num_steps, table)
            # back to the default layout for the student's head (e.g.
            # mmcv's deformable convs refuse channels-last inputs)
            out = traj.mean.contiguous()
            if not self.theta:
                outputs[k] = out
            if training:
                level_losses = self._level_losses(
                    z, traj.predictions, out, targets[k], k, weights[k], ctx)
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
