"""DiffKD: schedule, denoiser, connector and real distillation steps."""
import math

import pytest
import torch
import torch.nn as nn
from conftest import (cls_batch, det_batch, seg_batch, tiny_deeplabv3,
                      tiny_resnet_cls, tiny_retinanet)
from ddim_reference import ddim_chain, ddim_step

from mmkdflow.models import Distiller
from mmkdflow.models.connectors import DiffKDConnector
from mmkdflow.models.diffusion import (DDIMSchedule, DiffusionBottleneck,
                                       FeatureNoiseAdapter,
                                       FeatureNoisePredictor,
                                       LinearAutoencoder, VectorNoiseAdapter,
                                       VectorNoisePredictor)
from mmkdflow.models.core import DistillContext

CTX = DistillContext()


def ab_ref(t: int) -> float:
    """alpha_bar_t = prod_{i<=t} (1 - beta_i), betas linear 1e-4..0.02."""
    return math.prod(1 - (1e-4 + i * (0.02 - 1e-4) / 999)
                     for i in range(t + 1))


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def connector(**kwargs) -> DiffKDConnector:
    cfg = dict(student_channels=8, teacher_channels=16)
    cfg.update(kwargs)
    return DiffKDConnector(**cfg)


class Oracle(nn.Module):
    """A perfect denoiser: always returns the true noise."""

    def __init__(self, eps):
        super().__init__()
        self.eps = eps
        self.time_embedding = nn.Embedding(1, 1)  # gives the net's dtype

    def forward(self, x, t):
        return self.eps


# ----------------------------------------------------------- schedule
def test_alpha_bar_closed_form_and_fp32_buffer():
    sched = DDIMSchedule()
    assert sched.alpha_bar.dtype == torch.float32
    assert sched.alpha_bar.shape == (1000, )
    assert 'alpha_bar' in sched.state_dict()
    for t in (0, 1, 399, 400, 999):
        assert sched.alpha_bar[t].item() == pytest.approx(ab_ref(t),
                                                          rel=1e-6)


def test_forward_noising_closed_form():
    sched = DDIMSchedule()
    torch.manual_seed(0)
    x0, eps = torch.randn(2, 3, 3, 4, 4).unbind(0)
    t = torch.tensor([0, 400, 999])
    noisy = sched.add_noise(x0, eps, t)
    for b, tb in enumerate(t.tolist()):
        a = ab_ref(tb)
        ref = math.sqrt(a) * x0[b] + math.sqrt(1 - a) * eps[b]
        torch.testing.assert_close(noisy[b], ref)


def test_inference_timesteps_rule():
    sched = DDIMSchedule()
    assert sched.inference_timesteps() == [400, 300, 200, 100, 0]
    assert sched.inference_timesteps(5, 500) == [500, 375, 250, 125, 0]
    assert sched.inference_timesteps(1, 400) == [400]
    assert sched.inference_timesteps(10, 900) == list(range(900, -1, -100))
    for bad in ((0, 400), (5, 1000), (5, 3)):
        with pytest.raises(ValueError):
            sched.inference_timesteps(*bad)


def test_matches_diffusers_ddim_scheduler():
    """diffusers' DDIM with 10 steps over 1000 ("leading" spacing, offset 0)
    visits 900, 800, ..., 0 and steps from t to t - 100: our default chain
    400 -> 300 -> ... -> 0 is its second half. ``set_alpha_to_one=True``
    makes its last step (t = 0, prev = -100) use alpha_bar_prev = 1, i.e.
    return x0_pred, as ours does; eta = 0 and no clipping make both
    deterministic. Our alpha_bar is a float64 cumprod rounded once to fp32,
    diffusers accumulates in fp32 (<= 3e-7 apart); with diffusers' table
    loaded into our buffer the textbook step is bit-identical, and the
    fused chain the connector runs agrees to float rounding."""
    from diffusers import DDIMScheduler
    ref = DDIMScheduler(
        num_train_timesteps=1000, beta_schedule='linear', beta_start=1e-4,
        beta_end=0.02, clip_sample=False, set_alpha_to_one=True,
        prediction_type='epsilon', timestep_spacing='leading', steps_offset=0)
    ref.set_timesteps(10)
    sched = DDIMSchedule()
    steps = sched.inference_timesteps()
    assert ref.timesteps[5:].tolist() == steps
    torch.testing.assert_close(sched.alpha_bar, ref.alphas_cumprod,
                               rtol=0, atol=1e-6)
    same_table = DDIMSchedule()
    same_table.load_state_dict({'alpha_bar': ref.alphas_cumprod.clone()})
    torch.manual_seed(0)
    x = exact = fused = torch.randn(2, 4, 5, 5)
    coefs = same_table.ddim_coefficients(steps)
    for i, (t, (c_x, c_eps)) in enumerate(zip(steps, coefs)):
        t_prev = steps[i + 1] if i + 1 < len(steps) else -1
        eps_pred = torch.randn_like(x)
        x = ref.step(eps_pred, t, x, eta=0.0).prev_sample
        exact = ddim_step(same_table, eps_pred, t, t_prev, exact)
        fused = torch.add(fused * c_x, eps_pred, alpha=c_eps)
        assert torch.equal(exact, x)  # bit-identical
        torch.testing.assert_close(fused, x, rtol=1e-5, atol=1e-5)


def test_fp32_buffer_survives_casts_and_state_dict():
    conn = connector()
    original = conn.schedule.alpha_bar.clone()
    conn.half()
    assert conn.branches[0]['proj'].weight.dtype == torch.float16
    assert conn.schedule.alpha_bar.dtype == torch.float32
    assert torch.equal(conn.schedule.alpha_bar, original)
    conn.to(torch.bfloat16)
    assert torch.equal(conn.schedule.alpha_bar, original)
    state = conn.state_dict()
    assert state['schedule.alpha_bar'].dtype == torch.float32
    fresh = DDIMSchedule()
    fresh.alpha_bar.zero_()
    fresh.load_state_dict({'alpha_bar': state['schedule.alpha_bar']})
    assert torch.equal(fresh.alpha_bar, original)
    assert fresh.alpha_bar[0].item() < 1.0  # fp16 would round it to 1


# ---------------------------------------------------------- networks
def test_parameter_counts():
    pred = FeatureNoisePredictor(256)
    emb = pred.time_embedding.weight.numel()
    assert emb == 1280 * 256 == 327_680
    assert n_params(pred) - emb == 207_872
    assert n_params(DiffusionBottleneck(256, 4)) == 70_784
    shared = DiffKDConnector(256, 256, share_across_levels=True)
    per_level = DiffKDConnector(256, 256, share_across_levels=False,
                                num_levels=5)
    one = n_params(shared.branches[0]['predictor'])
    assert one == 207_872 + 327_680
    assert sum(n_params(b['predictor']) for b in shared.branches) == one
    assert sum(n_params(b['predictor']) for b in per_level.branches) == \
        5 * one
    assert n_params(per_level) == 5 * n_params(shared)


def test_networks_accept_vectors_and_maps():
    for pred, adapter in ((VectorNoisePredictor(11), VectorNoiseAdapter(11)),
                          (FeatureNoisePredictor(11),
                           FeatureNoiseAdapter(11))):
        for shape in ((4, 11), (2, 11, 6, 6)):
            x = torch.randn(shape)
            assert pred(x, torch.tensor([3] * shape[0])).shape == shape
            gamma = adapter(x)
            assert gamma.shape == (shape[0], )
            assert ((gamma > 0) & (gamma < 1)).all()
    latent, recon = LinearAutoencoder(16, 4)(torch.randn(2, 16, 3, 3))
    assert latent.shape == (2, 4, 3, 3) and recon.shape == (2, 16, 3, 3)


class FixedNet(nn.Module):
    """A deterministic stand-in denoiser: eps_pred = 0.3 x + 0.01 t."""

    def __init__(self):
        super().__init__()
        self.time_embedding = nn.Embedding(1, 1)

    def forward(self, x, t):
        return 0.3 * x + 0.01 * torch.as_tensor(t, dtype=x.dtype)


@pytest.mark.parametrize('use_anm', [False, True])
def test_fused_denoise_is_the_step_by_step_ddim_chain(use_anm):
    """The connector's fused chain (ANM start, one multiply-add per step)
    equals the textbook two-stage DDIM chain; with a perfect denoiser that
    returns the true noise, the chain from z_400 = add_noise(z, eps, 400)
    stays on the trajectory and ends at z."""
    torch.manual_seed(0)
    conn = connector(use_anm=use_anm)
    branch = conn.branches[0]
    branch['predictor'] = FixedNet()
    s, noise = torch.randn(2, 2, 16, 5, 5).unbind(0)
    x = s
    if use_anm:
        gamma = branch['anm'](s).reshape(-1, 1, 1, 1)
        x = gamma * s + (1 - gamma) * noise
    torch.testing.assert_close(
        conn.denoise(branch, s, noise),
        ddim_chain(conn.schedule, branch['predictor'], x, conn.timesteps),
        rtol=1e-5, atol=1e-5)

    z, eps = torch.randn(2, 16, 4, 4), torch.randn(2, 16, 4, 4)
    branch['predictor'] = Oracle(eps)
    if use_anm:  # gamma = 1: the ANM start is the student itself
        branch['anm'].forward = lambda s: torch.ones(s.shape[0])
    start = conn.schedule.add_noise(z, eps, 400)
    torch.testing.assert_close(conn.denoise(branch, start), z,
                               rtol=1e-4, atol=1e-4)
    x, steps = start, conn.timesteps
    for t, t_prev in zip(steps, steps[1:]):
        x = ddim_step(conn.schedule, eps, t, t_prev, x)
        torch.testing.assert_close(x, conn.schedule.add_noise(z, eps, t_prev))


# ---------------------------------------------------------- connector
def test_gradient_routing():
    conn = connector(use_ae=True, ae_channels=4)
    f_s = torch.randn(2, 8, 5, 5, requires_grad=True)
    f_t = torch.randn(2, 16, 5, 5, requires_grad=True)
    out = conn([f_s], [f_t], CTX)
    assert set(out.losses) == {'loss_diff', 'loss_kd', 'loss_ae'}
    branch = conn.branches[0]
    enc = list(branch['ae'].encoder.parameters())
    denoiser = list(branch['predictor'].parameters())

    def grads(loss, params):
        return torch.autograd.grad(loss, params, retain_graph=True,
                                   allow_unused=True)

    # loss_kd reaches the student input and every student-path module (conv
    # biases right before a training-mode BN get ~0 gradient, hence weights)
    for part in ([f_s], branch['proj'], branch['anm'], branch['predictor'],
                 branch['out_proj']):
        params = list(part.parameters()) if isinstance(part, nn.Module) \
            else part
        got = grads(out.losses['loss_kd'], params)
        assert all(g is not None for g in got)
        assert sum(g.abs().sum() for g in got) > 0
    emb = branch['predictor'].time_embedding.weight
    assert grads(out.losses['loss_kd'], [emb])[0] is not None
    assert grads(out.losses['loss_diff'], denoiser)[0].abs().sum() > 0
    for name in ('loss_kd', 'loss_diff'):
        assert all(g is None for g in grads(out.losses[name], enc))
    got = grads(out.losses['loss_ae'], enc)
    assert all(g is not None for g in got) and got[0].abs().sum() > 0
    sum(out.losses.values()).backward()
    assert f_t.grad is None
    assert not out.teacher[0].requires_grad


def test_inference_returns_student_unchanged():
    conn = connector()
    feats = [torch.randn(2, 8, 4, 4), torch.randn(2, 8, 2, 2)]
    out = conn(feats, None, CTX)
    assert all(a is b for a, b in zip(out.student, feats))
    assert out.losses == {}


def bn_state(module: nn.Module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()
            if 'running' in k or 'num_batches_tracked' in k}


def test_diffusion_loss_is_per_level_exact_with_training_bn():
    """Equal-shaped levels used to share one call: with training-mode BN
    that changes the batch statistics. Compare with a per-level reference:
    loss, parameter gradients, BN running stats and num_batches_tracked."""
    import copy
    torch.manual_seed(0)
    conn = connector().train()
    reference = copy.deepcopy(conn.branches[0]['predictor']).train()
    shapes = [(2, 16, 4, 4)] * 3 + [(2, 16, 2, 2)]
    z = [torch.randn(s) * (1 + i) for i, s in enumerate(shapes)]
    eps = [torch.randn_like(x) for x in z]
    ts = [torch.randint(0, 1000, (2, )) for _ in z]
    loss = conn.diffusion_loss(z, eps, ts)
    loss.backward()
    ref_loss = sum(
        nn.functional.mse_loss(
            reference(conn.schedule.add_noise(a, b, c), c), b)
        for a, b, c in zip(z, eps, ts))
    ref_loss.backward()
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-7)
    predictor = conn.branches[0]['predictor']
    for (name, p), q in zip(predictor.named_parameters(),
                            reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7,
                                   msg=name)
    state, ref_state = bn_state(predictor), bn_state(reference)
    assert state.keys() == ref_state.keys()
    for key in state:
        torch.testing.assert_close(state[key], ref_state[key], msg=key)
    assert all(v.item() == len(shapes) for k, v in state.items()
               if k.endswith('num_batches_tracked'))


def test_forward_calls_the_shared_denoiser_once_per_level_and_step():
    """The whole training forward: every level runs its own BN batches
    (5 DDIM steps + 1 diffusion-loss call per level)."""
    conn = connector().train()
    feats = [torch.randn(2, 8, 4, 4) for _ in range(3)]
    targets = [torch.randn(2, 16, 4, 4) for _ in range(3)]
    conn(feats, targets, CTX)
    tracked = {k: v.item() for k, v in bn_state(
        conn.branches[0]['predictor']).items()
        if k.endswith('num_batches_tracked')}
    assert tracked and set(tracked.values()) == {3 * (5 + 1)}


def test_interleaved_level_order_is_the_released_one():
    """``level_order='interleaved'`` (released) runs each level's
    diffusion loss right after its denoising; the default runs every
    level's denoising first. Without ANM (no draw in the denoising) both
    see the same draws: equal losses and gradients; only the denoiser's
    BatchNorm running statistics differ, and the interleaved ones are
    those of the per-level sequence."""
    import copy
    torch.manual_seed(0)
    ours = connector(use_anm=False).train()
    released = copy.deepcopy(ours)
    released.level_order = 'interleaved'
    reference = copy.deepcopy(ours)
    feats = [torch.randn(2, 8, 4, 4), torch.randn(2, 8, 2, 2)]
    targets = [torch.randn(2, 16, 4, 4) * 3, torch.randn(2, 16, 2, 2)]
    runs = []
    for conn in (ours, released):
        torch.manual_seed(1)
        out = conn(feats, targets, CTX)
        total = sum(out.losses.values())
        runs.append((out.losses, torch.autograd.grad(
            total, list(conn.parameters()), allow_unused=True)))
    for key in runs[0][0]:
        torch.testing.assert_close(runs[0][0][key], runs[1][0][key])
    for a, b in zip(runs[0][1], runs[1][1]):
        if a is not None:
            torch.testing.assert_close(a, b)
    torch.manual_seed(1)
    branch = reference.branches[0]
    for level, (f_s, f_t) in enumerate(zip(feats, targets)):
        reference.denoise(branch, branch['proj'](f_s))
        reference.level_diffusion_loss(level, f_t)
    got, want = (bn_state(c.branches[0]['predictor'])
                 for c in (released, reference))
    for key in want:
        torch.testing.assert_close(got[key], want[key], msg=key)
    moved = bn_state(ours.branches[0]['predictor'])
    assert any(not torch.allclose(moved[k], want[k]) for k in want
               if 'running_mean' in k)
    with pytest.raises(ValueError, match='level_order'):
        connector(level_order='released')


@pytest.mark.parametrize('key', ['diff_loss_weight', 'ae_loss_weight'])
def test_negative_or_nonfinite_loss_weights_are_refused(key):
    extra = dict(use_ae=True, ae_channels=8) if key == 'ae_loss_weight' \
        else {}
    for bad in (-1.0, float('nan'), float('inf')):
        with pytest.raises(ValueError,
                           match=f'{key} must be a finite number >= 0'):
            connector(**{key: bad}, **extra)
    assert getattr(connector(**{key: 0.0}, **extra), key) == 0.0


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_inference_steps=0), r'num_inference_steps must lie in \[1, '),
    (dict(num_inference_steps=2000), r'num_inference_steps must lie in'),
    (dict(num_train_timesteps=0), 'num_train_timesteps must be >= 1'),
    (dict(start_timestep=1000), r'start_timestep must lie in \[0, 999\]'),
])
def test_step_counts_that_cannot_be_meant_are_refused_at_build(kwargs,
                                                               match):
    with pytest.raises(ValueError, match=match):
        connector(**kwargs)


def test_negative_kd_loss_weight_is_refused():
    with pytest.raises(ValueError, match='loss_weight.*-5.0'):
        connector(kd_loss=dict(type='MSELoss', loss_weight=-5.0))


@pytest.mark.parametrize('form, shape, loss', [
    ('vector', (4, 10), dict(type='KDLoss', temperature=1.0)),
    ('vector', (2, 11, 6, 6), dict(type='DISTLoss')),
    ('feature', (2, 11, 6, 6), dict(type='DISTLoss')),
    ('feature', (2, 16, 6, 6), dict(type='AttentionMSELoss')),
])
def test_logits_and_kd_distances(form, shape, loss):
    c = shape[1]
    conn = DiffKDConnector(c, c, form=form, kd_loss=loss)
    out = conn([torch.randn(shape)], [torch.randn(shape)], CTX)
    assert out.student[0].shape == shape == out.teacher[0].shape
    assert all(torch.isfinite(v) for v in out.losses.values())


def test_bf16_autocast_gives_finite_float32_losses():
    conn = connector(share_across_levels=False, num_levels=2)
    feats = [torch.randn(2, 8, 6, 6), torch.randn(2, 8, 3, 3)]
    targets = [torch.randn(2, 16, 6, 6), torch.randn(2, 16, 3, 3)]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = conn(feats, [t.bfloat16() for t in targets], CTX)
    assert conn.schedule.alpha_bar.dtype == torch.float32
    for value in out.losses.values():
        assert value.dtype == torch.float32 and torch.isfinite(value)
    sum(out.losses.values()).backward()


def test_config_errors():
    with pytest.raises(ValueError, match='ae_channels'):
        connector(use_ae=True)
    with pytest.raises(ValueError, match='form'):
        connector(form='unet')
    with pytest.raises(ValueError, match='num_levels'):
        connector(share_across_levels=False)
    with pytest.raises(ValueError, match='latent_channels'):
        connector(latent_channels=4)
    with pytest.raises(ValueError, match='student_channels'):
        connector()([torch.randn(2, 3, 4, 4)], [torch.randn(2, 16, 4, 4)],
                    CTX)
    with pytest.raises(ValueError, match='num_levels=2'):
        connector(share_across_levels=False, num_levels=2)(
            [torch.randn(2, 8, 4, 4)], [torch.randn(2, 16, 4, 4)], CTX)


# ------------------------------------------------ real distillation steps
def train_step(model, batch, keys):
    model.train()
    losses = model(*batch, mode='loss')
    assert set(keys) <= set(losses)
    total, log_vars = model.parse_losses(losses)
    assert set(keys) <= set(log_vars) and torch.isfinite(total)
    total.backward()
    conn = model.connectors['p']
    for part in ('proj', 'predictor'):
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in conn.branches[0][part].parameters())
    assert all(p.grad is None for p in model.teacher.parameters())
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                    lr=0.01).step()
    return losses


def test_retinanet_fpn_step_and_plain_student_export():
    from mmengine.registry import MODELS
    student, teacher = tiny_retinanet(8, 16), tiny_retinanet(16, 32)
    model = Distiller(
        student=student, teacher=teacher, allow_random_teacher=True,
        distill_points=dict(p=dict(
            student='neck', teacher='neck', index=(0, 1, 2, 3, 4),
            connector=dict(type='DiffKDConnector', student_channels=16,
                           teacher_channels=32,
                           kd_loss=dict(type='MSELoss', loss_weight=5.0)))))
    train_step(model, det_batch(), ['distill.p.loss_diff', 'distill.p.loss_kd',
                                    'student.loss_cls'])
    alone = MODELS.build(tiny_retinanet(8, 16))
    assert n_params(model.student) == n_params(alone)
    assert set(model.student.state_dict()) == set(alone.state_dict())
    model.eval()
    with torch.no_grad():
        preds = model(*det_batch(), mode='predict')
    assert len(preds) == 2


def test_classifier_logits_step_vector_form():
    model = Distiller(
        student=tiny_resnet_cls(8), teacher=tiny_resnet_cls(16),
        allow_random_teacher=True, distill_points=dict(p=dict(
            student='head.fc', teacher='head.fc', connector=dict(
                type='DiffKDConnector', student_channels=10,
                teacher_channels=10, form='vector',
                kd_loss=dict(type='KDLoss', temperature=1.0)))))
    train_step(model, cls_batch(), ['distill.p.loss_diff', 'distill.p.loss_kd',
                                    'student.loss'])


def test_segmentation_logits_step_dist():
    model = Distiller(
        student=tiny_deeplabv3(8), teacher=tiny_deeplabv3(16),
        allow_random_teacher=True, distill_points=dict(p=dict(
            student='decode_head.conv_seg', teacher='decode_head.conv_seg',
            connector=dict(type='DiffKDConnector', student_channels=11,
                           teacher_channels=11, form='vector',
                           kd_loss=dict(type='DISTLoss')))))
    train_step(model, seg_batch(), ['distill.p.loss_diff',
                                    'distill.p.loss_kd'])


# ------------------------------------------------ fused, sync-free chain
def test_ddim_coefficients_closed_form():
    """c_x = sqrt(ab_prev / ab_t), c_eps = sqrt(1 - ab_prev) - sqrt(ab_prev
    (1 - ab_t) / ab_t) in float64 on the float32 table, ab_prev = 1 after
    the last step (which then returns x0_pred)."""
    sched = DDIMSchedule()
    steps = sched.inference_timesteps()
    coefs = sched.ddim_coefficients(steps)
    assert len(coefs) == len(steps)
    for i, (t, (c_x, c_eps)) in enumerate(zip(steps, coefs)):
        t_prev = steps[i + 1] if i + 1 < len(steps) else -1
        a = sched.alpha_bar[t].double().item()
        a_prev = sched.alpha_bar[t_prev].double().item() if t_prev >= 0 \
            else 1.0
        assert c_x == pytest.approx(math.sqrt(a_prev / a), rel=1e-12)
        assert c_eps == pytest.approx(
            math.sqrt(1 - a_prev) - math.sqrt(a_prev * (1 - a) / a),
            rel=1e-12)
    assert coefs[-1][0] == pytest.approx(1 / math.sqrt(ab_ref(0)))
    with pytest.raises(ValueError, match='timesteps'):
        sched.ddim_coefficients([1000])


def test_ddim_coefficients_follow_a_loaded_table():
    sched = DDIMSchedule()
    before = sched.ddim_coefficients([400, 0])
    assert sched.ddim_coefficients([400, 0]) is before  # cached
    table = sched.alpha_bar.clone()
    table[400] = 0.5
    sched.load_state_dict({'alpha_bar': table})
    after = sched.ddim_coefficients([400, 0])
    assert after[0][0] == pytest.approx(math.sqrt(ab_ref(0) / 0.5),
                                        rel=1e-6)
