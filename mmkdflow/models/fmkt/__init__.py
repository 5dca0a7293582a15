r"""FM-KT: knowledge transfer via flow matching (Shao et al., 2024).

A learnable meta-encoder :math:`E` moves the student representation
:math:`Z` to the teacher's :math:`X_T` along a flow integrated with N Euler
steps; each step predicts the teacher, every prediction is matched to it
by a distillation loss, and the mean of the predictions is the refined
student output (an implicit ensemble). In the order a training step
computes them, with where:

1. **Interpolant** between the teacher (t = 0) and the student (t = 1),
   :math:`x_t = \alpha_t X_T + \sigma_t \epsilon`; rectified flow (the
   default) has :math:`\alpha_t = 1 - t, \sigma_t = t, \epsilon = Z`:
   :class:`RectifiedSchedule`, :class:`VPSchedule`, :class:`VESchedule`
   (``schedules.py``, :func:`build_schedule`).
2. **Velocity** on the sampler's own Euler state, never on the teacher:
   :math:`v_i = g \odot E(x + \mathrm{emb}(t_i))`, :math:`t_i = i / N`
   for :math:`i = N, \dots, 1`, with :math:`g` a per-channel gain that is 0
   at initialisation (``init='identity'``; no gain with ``'released'``):
   :class:`GatedVelocityField` / :class:`VelocityField`
   (``velocity.py``), :class:`TimeEmbedding` and
   :func:`sinusoidal_embedding` (``time_embedding.py``), the meta-encoders
   :math:`E` of :data:`META_ENCODERS` (``meta_encoders.py``,
   ``transformer_encoder.py``, :func:`build_meta_encoder`).
3. **Teacher prediction** of step i, anchored at the exact start
   :math:`Z = x_1`: :math:`\hat X_i = (\sigma'_{t_i} Z - \sigma_1 v_i) /
   (\alpha_1 \sigma'_{t_i} - \alpha'_{t_i} \sigma_1)`, i.e.
   :math:`\hat X_i = Z - v_i` for rectified flow:
   :meth:`Schedule.teacher_prediction`, called by :func:`euler_sample`
   (``sampler.py``; ``anchor='state'`` anchors at :math:`x` instead).
4. **Euler step** :math:`x \leftarrow x - v_i / N`, all N steps with
   gradients: :func:`euler_sample`.
5. **Implicit ensemble**: the output is :math:`\frac1N \sum_i \hat X_i`
   (for rectified flow also the Euler end point
   :math:`Z - \frac1N \sum_i v_i`): :attr:`FlowTrajectory.mean`.
6. **Step count** N: ``num_steps`` in training or a uniform draw from
   ``num_steps_choices`` per call, ``num_steps_test`` at inference, one
   field per FPN level or one shared: :meth:`EulerFlow.draw_num_steps`,
   :class:`EulerFlow` (``flow.py``).
7. **Pair decoupling** (``dirac_ratio`` :math:`\beta_d < 1`): a fraction
   :math:`1 - \beta_d` of the batch gets other samples' targets, never in
   place: :class:`PairDecoupling` (``pairing.py``).
8. **Feature loss** of level k (FPN detection, feature recipes):
   :math:`\mathcal{L}_{flow,k} = \frac{w_k}{N} \sum_i D(P(\hat X_i),
   X_{T,k})`, P the optional 1x1 ``teacher_proj``; the mean replaces
   the level for the student's head: :class:`FMKTFeatureConnector`
   (``feature_connector.py``, ``_level_losses``, through
   :meth:`~mmkdflow.models.losses.BaseDistillLoss.forward_steps`).
9. **Logit loss** (classification; per pixel for segmentation [ext]):
   :math:`o_i = fc(\mathrm{pool}(\hat X_i))`, :math:`\mathcal{L}_{flow} =
   \frac{w}{N} \sum_i D(o_i, y_T)` and :math:`\mathcal{L}_{ce} =
   \frac{w c}{N} \sum_i CE(o_i, y)`; :math:`\frac1N \sum_i o_i` replaces
   the student's classifier output: :class:`FlowLogitHead`
   (``logit_head.py``), :class:`FMKTLogitConnector`
   (``logit_connector.py``, ``_losses``).
10. **OFM-KT** (``online=True``, no teacher): :math:`D(o_i,
    \mathrm{sg}(\frac1N \sum_j o_j))` in place of :math:`D(o_i, y_T)`,
    label smoothing 0.1: :class:`FMKTLogitConnector`.
11. **FM-KT-Theta** (``theta=True``, no inference cost):
    :math:`\mathcal{L}_{theta} = w\,\theta\,D(fc_0(Z), \mathrm{sg}(\frac1N
    \sum_i o_i))` for logits, :math:`w_k\,\theta\,D(Z_k,
    \mathrm{sg}(\frac1N \sum_i \hat X_i))` for features [ext]; at
    inference the raw :math:`fc_0(Z)` or :math:`Z_k` is returned and no
    flow runs: ``_losses`` / ``_level_losses`` of the two connectors.

:class:`FMKTConnector` is the abstract base of both connectors.
"""
from .base import FMKTConnector
from .feature_connector import FMKTFeatureConnector
from .flow import FLOW_INITS, EulerFlow
from .logit_connector import FMKTLogitConnector
from .logit_head import FlowLogitHead, own_logits
from .meta_encoders import (META_ENCODERS, ConvNeXtBlock, LayerNorm2d,
                            MetaEncoderConv, MetaEncoderConvDet,
                            MetaEncoderConvNeXt, MetaEncoderMLP,
                            MetaEncoderResConv, build_meta_encoder)
from .pairing import (DECOUPLING_DRAWS, PairDecoupling,
                      decoupling_permutation, released_permutation)
from .sampler import FlowTrajectory, checkpointed, euler_sample
from .schedules import (SCHEDULES, RectifiedSchedule, Schedule, VESchedule,
                        VPSchedule, build_schedule)
from .time_embedding import TimeEmbedding, sinusoidal_embedding
from .transformer_encoder import MetaEncoderTransformer
from .velocity import GatedVelocityField, VelocityField

__all__ = [
    'FMKTConnector', 'FMKTFeatureConnector', 'FMKTLogitConnector',
    'FLOW_INITS', 'EulerFlow', 'FlowLogitHead', 'own_logits',
    'META_ENCODERS', 'ConvNeXtBlock', 'LayerNorm2d', 'MetaEncoderConv',
    'MetaEncoderConvDet', 'MetaEncoderConvNeXt', 'MetaEncoderMLP',
    'MetaEncoderResConv', 'MetaEncoderTransformer', 'build_meta_encoder',
    'DECOUPLING_DRAWS', 'PairDecoupling', 'decoupling_permutation',
    'released_permutation', 'FlowTrajectory', 'checkpointed',
    'euler_sample', 'SCHEDULES', 'RectifiedSchedule', 'Schedule',
    'VESchedule', 'VPSchedule', 'build_schedule', 'TimeEmbedding',
    'sinusoidal_embedding', 'GatedVelocityField', 'VelocityField'
]
