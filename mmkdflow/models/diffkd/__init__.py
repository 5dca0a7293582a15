r"""DiffKD: knowledge diffusion for distillation (Huang et al., 2023).

The student feature is a noisy version of the teacher feature; a diffusion
model trained on the teacher denoises it, and the distillation loss compares
the denoised student with the teacher. Equation numbers are the paper's
(arXiv:2305.15712).

1. **Forward diffusion** (Eq. (3)): :math:`x_t = \sqrt{\bar\alpha_t} z_t +
   \sqrt{1 - \bar\alpha_t}\,\epsilon`, :math:`\epsilon \sim N(0, I)`, with the
   linear-beta schedule of :class:`DDIMSchedule`.
2. **Diffusion loss** (Eq. (4)): :math:`L_{diff} = \lVert \Phi(x_t, t) -
   \epsilon \rVert_2^2`, :math:`t \sim U\{0..T-1\}`, with the noise
   predictor :math:`\Phi` (:class:`FeatureNoisePredictor`,
   :class:`VectorNoisePredictor`):
   :meth:`DiffKDConnector.level_diffusion_loss`.
3. **Denoising** (Eq. (5)): deterministic DDIM (:math:`\eta = 0`) from
   ``start_timestep`` to 0 (:meth:`DDIMSchedule.step`).
4. **Autoencoder** (Eq. (6)): the teacher feature is compressed,
   :math:`z_t = \mathrm{enc}(F_t)`, trained with :math:`L_{ae} =
   \lVert \mathrm{dec}(z_t) - F_t \rVert_2^2` (:class:`LinearAutoencoder`).
5. **Distillation loss** (Eq. (7)): :math:`L_{kd} = d(z_s, z_t)` on the
   denoised student :math:`z_s` (:meth:`DiffKDConnector.forward`).
6. **Adaptive noise matching** (Eq. (8)): the start is
   :math:`x = \gamma s + (1 - \gamma)\epsilon` with :math:`\gamma` from
   :class:`FeatureNoiseAdapter` / :class:`VectorNoiseAdapter`.
7. **Total** (Eq. (9)): :math:`L = L_{task} + \lambda_1 L_{diff} +
   \lambda_2 L_{ae} + L_{kd}` (``diff_loss_weight``, ``ae_loss_weight``,
   the ``kd_loss``'s own ``loss_weight``).

:class:`DiffKDConnector` (``connector.py``) runs the steps in this order
for every distill point.
"""
from .autoencoder import LinearAutoencoder
from .bottleneck import DiffusionBottleneck
from .connector import DiffKDConnector
from .ddim_schedule import DDIMSchedule
from .noise_adapter import FeatureNoiseAdapter, VectorNoiseAdapter
from .noise_predictor import FeatureNoisePredictor, VectorNoisePredictor

__all__ = [
    'DDIMSchedule', 'DiffKDConnector', 'DiffusionBottleneck',
    'FeatureNoiseAdapter', 'FeatureNoisePredictor', 'LinearAutoencoder',
    'VectorNoiseAdapter', 'VectorNoisePredictor'
]
