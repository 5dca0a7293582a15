"""The DiffKD connector: the student feature as a noisy teacher feature,
denoised (steps 1-4 of :class:`DiffKDConnector`, with the paper's equation
numbers)."""
from collections import OrderedDict
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkdflow.registry import MODELS
from ..core import DistillContext, check_nonnegative_weight
from ..connectors.base import (BaseConnector, ConnectorOutput,
                               IdentityAtInference)
from ..losses import build_distill_loss
from ..utils import (CompileOption, compile_options, compiled, from_map,
                     to_map)
from .autoencoder import LinearAutoencoder
from .ddim_schedule import DDIMSchedule
from .noise_adapter import FeatureNoiseAdapter, VectorNoiseAdapter
from .noise_predictor import FeatureNoisePredictor, VectorNoisePredictor

_FORMS = {
    'feature': (FeatureNoisePredictor, FeatureNoiseAdapter),
    'vector': (VectorNoisePredictor, VectorNoiseAdapter),
}
#: Orders of the per-level denoising and diffusion-loss calls.
LEVEL_ORDERS = ('denoise_first', 'interleaved')


def _randn_like(x: Tensor) -> Tensor:
    """``randn_like(x)`` in ``x``'s memory format, drawn into contiguous
    memory: ``normal_`` on a channels-last map takes a much slower strided
    path on CPU."""
    if x.dim() == 4 and not x.is_contiguous() and \
            x.is_contiguous(memory_format=torch.channels_last):
        b, c, h, w = x.shape
        return torch.randn((b, h, w, c), dtype=x.dtype,
                           device=x.device).permute(0, 3, 1, 2)
    return torch.randn_like(x)


def _predict(predictor: nn.Module, x: Tensor, t: Tensor) -> Tensor:
    """``Phi(x, t)``: the unit :func:`torch.compile` sees (a module-level
    function, so that no compiled state sits on the module)."""
    return predictor(x, t)


@MODELS.register_module()
class DiffKDConnector(IdentityAtInference, BaseConnector):
    r"""Knowledge diffusion for distillation (DiffKD, Huang et al. 2023).

    For each level (selected tensor) in training, with ``d`` the configured
    distance (``kd_loss``) and the DDIM schedule of :class:`DDIMSchedule`:

    1. ``s = proj(F_s)`` (1x1 conv with bias, ``C_s -> C``); the target is
       ``z_t = enc(F_t).detach()`` with the autoencoder (``C = C_ae``),
       else ``z_t = F_t`` (``C = C_t``).
    2. ANM start (Eq. (8)): ``x = gamma * s + (1 - gamma) * eps`` with
       ``eps ~ N(0, I)`` and ``gamma = ANM(s)`` in (0, 1) per sample. With
       ``use_anm=False`` (the paper's "w/o ANM" ablation) ``x = s``: the
       projected student itself is taken as the noisy sample at
       ``start_timestep``.
    3. Deterministic DDIM (eta = 0) at :meth:`DDIMSchedule.inference_timesteps`
       (``[400, 300, 200, 100, 0]`` by default), the last step giving the
       predicted ``x_0``; ``z_s = BN(conv1x1(x_0))``.
    4. Losses, each summed over levels (Eq. (9)):
       ``loss_diff = diff_loss_weight * MSE(Phi(x_t, t), eps)`` with
       ``x_t = sqrt(ab_t) z_t + sqrt(1 - ab_t) eps`` and
       ``t ~ U{0..T-1}`` per sample (Eq. (3), (4));
       ``loss_ae = ae_loss_weight * MSE(dec(enc(F_t)), F_t)`` (Eq. (6));
       ``loss_kd = d(z_s, z_t)`` (Eq. (7); its weight is the loss's own
       ``loss_weight``).

    Order of the calls (``level_order``): ``'denoise_first'`` (default)
    runs every level's steps 1-3 and ``loss_kd``, then every level's
    ``loss_diff``; ``'interleaved'`` (the released code) runs each level's
    ``loss_diff`` right after its denoising. The losses and gradients are
    the same for the same random draws (training-mode BatchNorm normalises
    with batch statistics), but the draws come in another order, and the
    denoiser's BatchNorm running statistics after a multi-level step
    differ (they are saved in checkpoints, unused at inference).

    Nothing on the student path is detached: ``loss_kd`` trains the student,
    the projections, the ANM and the denoiser; the denoiser also learns from
    ``loss_diff``; the encoder only from ``loss_ae``. The teacher input is
    detached. At inference (``teacher is None``) the student tensors are
    returned unchanged: DiffKD does not change the student (use it with
    ``replace=False``), so the exported model is the plain student.

    Shapes: feature maps ``(B, C, H, W)``, logits ``(B, K)`` (viewed as
    ``(B, K, 1, 1)``) and spatial logits ``(B, K, H, W)``; the student and
    teacher of a level must share ``B`` and ``H, W``, unless
    ``resize_student`` resizes the student map to the teacher's.

    Cost: the networks run once per level (training-mode BatchNorm needs
    each level alone); the DDIM chain is one fused multiply-add per step,
    and a training step reads nothing back to the host.

    Args:
        student_channels (int): Student channels ``C_s``.
        teacher_channels (int): Teacher channels ``C_t``.
        latent_channels (int, optional): Diffusion channels ``C``; ``None``
            means ``ae_channels`` with the autoencoder, else ``C_t`` (any other
            value must agree with these). Defaults to None.
        use_ae (bool): Compress the teacher with a :class:`LinearAutoencoder`.
            Defaults to False.
        ae_channels (int, optional): Its latent channels ``C_ae`` (needed when
            ``use_ae``). Defaults to None.
        form (str): ``'feature'`` (bottleneck denoiser, kernel 3) or
            ``'vector'`` (1x1 MLP denoiser, for logits). Defaults to 'feature'.
        num_inference_steps (int): Denoising network evaluations (5). Defaults
            to 5.
        start_timestep (int): Timestep of the initial noisy sample (400; the
            paper's appendix says 500). Defaults to 400.
        share_across_levels (bool): One set of modules (projection, ANM,
            denoiser, output projection, AE) for all levels; ``False`` builds
            one set per level and needs ``num_levels``. Defaults to True.
        num_levels (int, optional): Number of levels when not shared. Defaults
            to None.
        use_anm (bool): Use adaptive noise matching (see step 2). Defaults to
            True.
        kd_loss (dict): Config of the distance ``d`` (an mmkdflow loss, whose
            ``loss_weight`` is its weight), e.g. ``MSELoss``, ``KDLoss`` (T=1,
            logits), ``DISTLoss`` (segmentation logits), ``AttentionMSELoss``
            (the detection "dagger" variant). Defaults to dict(type='MSELoss',
            loss_weight=1.0).
        diff_loss_weight (float): ``lambda_1`` (finite, >= 0). Defaults to 1.0.
        ae_loss_weight (float): ``lambda_2`` (finite, >= 0). Defaults to 1.0.
        num_train_timesteps (int): Diffusion steps ``T`` of the schedule.
            Defaults to 1000.
        level_order (str): ``'denoise_first'`` or ``'interleaved'``
            (released), see above. Defaults to 'denoise_first'.
        resize_student (bool): Resize a student map whose ``(H, W)`` differs
            from the teacher's to the teacher's (bilinear) before the
            projection, e.g. a teacher map twice the student's. Defaults to
            False.
        channels_last (bool): Run feature maps in the channels-last memory
            format (one copy of each input level; the outputs stay
            channels-last); ``tools/benchmark.py --diffkd-channels-last``
            measures it on your hardware. Defaults to False.
        compile (bool | dict, optional): Run the denoiser ``Phi`` through
            :func:`torch.compile`: ``True`` or a dict of its options (see
            :func:`~mmkdflow.models.utils.compile_options`). Same outputs and
            gradients as eager to float rounding; the first training step pays
            the compilation (``tools/benchmark.py`` reports it). Defaults to
            False.
        init_cfg (dict, optional): MMEngine initialisation config. Defaults to
            None.
    """

    def __init__(self,
                 student_channels: int,
                 teacher_channels: int,
                 latent_channels: Optional[int] = None,
                 use_ae: bool = False,
                 ae_channels: Optional[int] = None,
                 form: str = 'feature',
                 num_inference_steps: int = 5,
                 start_timestep: int = 400,
                 share_across_levels: bool = True,
                 num_levels: Optional[int] = None,
                 use_anm: bool = True,
                 kd_loss: dict = dict(type='MSELoss', loss_weight=1.0),
                 diff_loss_weight: float = 1.0,
                 ae_loss_weight: float = 1.0,
                 num_train_timesteps: int = 1000,
                 level_order: str = 'denoise_first',
                 resize_student: bool = False,
                 channels_last: bool = False,
                 compile: CompileOption = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if form not in _FORMS:
            raise ValueError(f"form must be 'feature' or 'vector', got "
                             f'{form!r}')
        if use_ae and ae_channels is None:
            raise ValueError('use_ae=True needs ae_channels (e.g. 1024)')
        expected = ae_channels if use_ae else teacher_channels
        if latent_channels is not None and latent_channels != expected:
            raise ValueError(
                f'latent_channels={latent_channels} must equal '
                f"{'ae_channels' if use_ae else 'teacher_channels'}="
                f'{expected}: the diffusion model runs on the teacher '
                f"{'latent' if use_ae else 'feature'}")
        if not share_across_levels and (num_levels is None or
                                        num_levels < 1):
            raise ValueError('share_across_levels=False needs num_levels '
                             '(e.g. 5 for FPN levels 0..4)')
        if level_order not in LEVEL_ORDERS:
            raise ValueError(f'level_order must be one of {LEVEL_ORDERS}, '
                             f'got {level_order!r}')
        self.level_order = level_order
        self.resize_student = bool(resize_student)
        self.student_channels = int(student_channels)
        self.teacher_channels = int(teacher_channels)
        self.latent_channels = int(expected)
        self.use_ae, self.use_anm = bool(use_ae), bool(use_anm)
        self.form = form
        self.share_across_levels = bool(share_across_levels)
        self.diff_loss_weight = check_nonnegative_weight(
            diff_loss_weight, 'diff_loss_weight', 'DiffKDConnector')
        self.ae_loss_weight = check_nonnegative_weight(
            ae_loss_weight, 'ae_loss_weight', 'DiffKDConnector')

        self.channels_last = bool(channels_last)
        compile_options(compile)  # validate at build time
        self.compile = compile
        self.schedule = DDIMSchedule(num_train_timesteps)
        self.timesteps = self.schedule.inference_timesteps(
            num_inference_steps, start_timestep)
        # the chain's timesteps on the module's device (not saved)
        self.register_buffer('timestep_ids', torch.tensor(
            self.timesteps, dtype=torch.long), persistent=False)
        n_sets = 1 if self.share_across_levels else int(num_levels)
        self.branches = nn.ModuleList(self._branch() for _ in range(n_sets))
        self.kd_loss = build_distill_loss(kd_loss, 'DiffKDConnector',
                                          'kd_loss')

    def _branch(self) -> nn.ModuleDict:
        """The learned modules for one level (or all levels when shared)."""
        c = self.latent_channels
        predictor_cls, adapter_cls = _FORMS[self.form]
        parts = OrderedDict(
            proj=nn.Conv2d(self.student_channels, c, 1),
            predictor=predictor_cls(c),
            out_proj=nn.Sequential(nn.Conv2d(c, c, 1), nn.BatchNorm2d(c)))
        if self.use_anm:
            parts['anm'] = adapter_cls(c)
        if self.use_ae:
            parts['ae'] = LinearAutoencoder(self.teacher_channels, c)
        return nn.ModuleDict(parts)

    def refined_student(self, student: List[Tensor],
                        level: int) -> Tuple[Tensor, str]:
        """The denoised student ``z_s = out_proj(denoise(proj(F_s)))`` of
        ``level``: the ANM start and the DDIM chain, as in training.

        Returns:
            tuple[Tensor, str]: The denoised student and a short description.
        """
        branch = self.branch_of(level)
        f_s, _ = to_map(student[level])
        z_s = branch['out_proj'](self.denoise(branch, branch['proj'](f_s)))
        return z_s, 'DiffKD denoised student'

    def set_speed_options(self, checkpoint: bool = False,
                          compile: bool = False) -> int:
        """Compile the denoiser ``Phi`` when ``compile`` (DiffKD has no
        activation checkpointing).

        Returns:
            int: 1 if the denoiser is compiled, else 0.
        """
        if not compile:
            return 0
        self.compile = True
        return 1

    def branch_of(self, level: int) -> nn.ModuleDict:
        """The module set that serves ``level``.

        Returns:
            nn.ModuleDict: The module set.
        """
        return self.branches[0 if self.share_across_levels else level]

    # ----------------------------------------------------------- pieces
    def predict_noise(self, predictor: nn.Module, x: Tensor,
                      t: Tensor) -> Tensor:
        """``Phi(x, t)``, compiled when the ``compile`` option is set.

        Returns:
            Tensor: The predicted noise, of ``x``'s shape.
        """
        options = compile_options(self.compile)
        if options is None:
            return predictor(x, t)
        return compiled(_predict, options)(predictor, x, t)

    def uses_channels_last(self, x: Tensor) -> bool:
        """Whether the level of ``x`` runs channels-last (the
        ``channels_last`` option; never for ``1 x 1`` maps such as
        logits).

        Returns:
            bool: Whether the level runs channels-last.
        """
        return self.channels_last and x.dim() == 4 and \
            x.shape[2] * x.shape[3] > 1

    def denoise(self, branch: nn.ModuleDict, s: Tensor,
                noise: Optional[Tensor] = None) -> Tensor:
        """ANM start (Eq. (8)) and the DDIM reverse process; returns the
        predicted clean sample ``x_0`` in ``s``'s dtype.

        The chain state is kept in float32. The start is one fused
        ``lerp(eps, s, gamma) = gamma * s + (1 - gamma) * eps`` and each step
        one multiply-add ``x = c_x * x + c_eps * eps_pred`` with the
        coefficients of :meth:`DDIMSchedule.ddim_coefficients` (Python
        floats: no schedule lookups, no host syncs); the timesteps are a
        device buffer, so the network calls copy nothing to the device.

        Args:
            branch (nn.ModuleDict): The module set of the level.
            s (Tensor): Projected student feature ``(B, C, H, W)``.
            noise (Tensor, optional): ``eps`` of the ANM start (default:
                drawn). Defaults to None.

        Returns:
            Tensor: The predicted clean sample ``x_0``, in ``s``'s dtype.
        """
        x = s.float()
        if self.use_anm:
            gamma = branch['anm'](s).float().reshape(-1, 1, 1, 1)
            eps = _randn_like(x) if noise is None else noise.float()
            x = torch.lerp(eps, x, gamma)
        predictor = branch['predictor']
        net_dtype = predictor.time_embedding.weight.dtype
        coefs = self.schedule.ddim_coefficients(self.timesteps)
        for i, (c_x, c_eps) in enumerate(coefs):
            eps_pred = self.predict_noise(predictor, x.to(net_dtype),
                                          self.timestep_ids[i])
            x = torch.add(x * c_x, eps_pred, alpha=c_eps)  # stays float32
        return x.to(s.dtype)

    def diffusion_loss(self,
                       latents: Sequence[Tensor],
                       noises: Optional[Sequence[Tensor]] = None,
                       timesteps: Optional[Sequence[Tensor]] = None
                       ) -> Tensor:
        """``sum_levels MSE(Phi(x_t, t), eps)`` (Eq. (4)), unweighted.

        One network call per level, always: the denoiser's BatchNorms run in
        training mode, where batching levels (even of equal shape) into one
        call would normalise them with joint batch statistics and update the
        running statistics once instead of once per level; the loss, the
        gradients and the BN state would then differ from per-level DiffKD.
        ``noises`` and ``timesteps`` (one per level) replace the random
        draws, for tests.

        Args:
            latents (Sequence[Tensor]): Detached teacher targets ``z_t`` as
                ``(B, C, H, W)``.
            noises (Sequence[Tensor], optional): Optional ``eps`` per level.
                Defaults to None.
            timesteps (Sequence[Tensor], optional): Optional ``(B,)`` long
                timesteps per level. Defaults to None.

        Returns:
            Tensor: The loss, a scalar.
        """
        return sum(self.level_diffusion_loss(
            level, latent, None if noises is None else noises[level],
            None if timesteps is None else timesteps[level])
            for level, latent in enumerate(latents))

    def level_diffusion_loss(self, level: int, latent: Tensor,
                             noise: Optional[Tensor] = None,
                             timestep: Optional[Tensor] = None) -> Tensor:
        """``MSE(Phi(x_t, t), eps)`` of one level, with ``eps`` and ``t``
        drawn unless given (see :meth:`diffusion_loss`).

        Returns:
            Tensor: The loss, a scalar.
        """
        predictor = self.branch_of(level)['predictor']
        z = latent.float()
        eps = _randn_like(z) if noise is None else noise.float()
        if timestep is not None:
            t = timestep.to(z.device)
            x_t = self.schedule.add_noise(z, eps, t)
        else:
            t = torch.randint(0, self.schedule.num_train_timesteps,
                              (z.shape[0], ), device=z.device)
            x_t = self.schedule.add_noise(z, eps, t, check=False)
        net_dtype = predictor.time_embedding.weight.dtype
        pred = self.predict_noise(predictor, x_t.to(net_dtype), t).float()
        return F.mse_loss(pred, eps)

    # ---------------------------------------------------------- forward
    def forward(self, student: List[Tensor], teacher: Optional[List[Tensor]],
                ctx: DistillContext, replaced: Any = None
                ) -> ConnectorOutput:
        """Denoise each student tensor and compute the DiffKD losses.

        Returns:
            ``ConnectorOutput(student=[z_s], teacher=[z_t], losses=dict(
            loss_diff, loss_kd[, loss_ae]))`` in training (shapes as the
            inputs, with ``C`` channels); the student list unchanged when
            ``teacher`` is None.
        """
        if teacher is None:
            return ConnectorOutput(student=list(student))
        if len(student) != len(teacher):
            raise ValueError(f'DiffKDConnector got {len(student)} student '
                             f'but {len(teacher)} teacher tensors')
        self.check_num_inputs(len(student))
        interleaved = self.level_order == 'interleaved'
        z_s_out, z_t_out, latents = [], [], []
        loss_kd, loss_ae, loss_diff = 0., 0., 0.
        for level, (f_s, f_t) in enumerate(zip(student, teacher)):
            branch = self.branch_of(level)
            f_s, was_vector = to_map(f_s)
            f_t, _ = to_map(f_t.detach())
            if self.resize_student and f_s.shape[2:] != f_t.shape[2:]:
                f_s = F.interpolate(f_s, size=f_t.shape[2:],
                                    mode='bilinear', align_corners=False)
            self._check(level, f_s, f_t)
            if self.uses_channels_last(f_s):
                f_s = f_s.contiguous(memory_format=torch.channels_last)
                f_t = f_t.contiguous(memory_format=torch.channels_last)
            if self.use_ae:
                latent, recon = branch['ae'](f_t)
                loss_ae = loss_ae + F.mse_loss(recon.float(), f_t.float())
                z_t = latent.detach()
            else:
                z_t = f_t
            s = branch['proj'](f_s)
            z_s = branch['out_proj'](self.denoise(branch, s))
            z_s, z_t_flat = from_map(z_s, was_vector), from_map(
                z_t, was_vector)
            loss_kd = loss_kd + self.kd_loss(z_s, z_t_flat, ctx)
            z_s_out.append(z_s)
            z_t_out.append(z_t_flat)
            if interleaved:
                loss_diff = loss_diff + self.level_diffusion_loss(level, z_t)
            else:
                latents.append(z_t)
        if not interleaved:
            loss_diff = self.diffusion_loss(latents)
        losses = dict(loss_diff=self.diff_loss_weight * loss_diff,
                      loss_kd=loss_kd)
        if self.use_ae:
            losses['loss_ae'] = self.ae_loss_weight * loss_ae
        return ConnectorOutput(student=z_s_out, teacher=z_t_out,
                               losses=losses)

    def check_num_inputs(self, num_inputs: int) -> None:
        """With ``share_across_levels=False``: exactly ``num_levels``
        tensors."""
        if not self.share_across_levels and \
                num_inputs != len(self.branches):
            raise ValueError(
                f'DiffKDConnector was built with num_levels='
                f'{len(self.branches)} but gets {num_inputs} levels')

    def _check(self, level: int, f_s: Tensor, f_t: Tensor) -> None:
        if f_s.shape[1] != self.student_channels or \
                f_t.shape[1] != self.teacher_channels:
            raise ValueError(
                f'DiffKDConnector (level {level}) expects student_channels='
                f'{self.student_channels}, teacher_channels='
                f'{self.teacher_channels}; got student {tuple(f_s.shape)}, '
                f'teacher {tuple(f_t.shape)}')
        if f_s.shape[0] != f_t.shape[0] or f_s.shape[2:] != f_t.shape[2:]:
            raise ValueError(
                f'DiffKDConnector (level {level}): student '
                f'{tuple(f_s.shape)} and teacher {tuple(f_t.shape)} differ '
                f'in batch or spatial size; resize_student=True resizes the '
                f'student map to the teacher\'s')
