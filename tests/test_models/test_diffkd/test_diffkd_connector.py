"""DiffKD connector: gradients, BatchNorm per level, losses, config checks."""
import pytest
import torch
import torch.nn as nn
from utils import connector

from mmkdflow.models.diffkd import DiffKDConnector
from mmkdflow.models.core import DistillContext

CTX = DistillContext()


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


def test_resize_student_pairs_maps_of_other_sizes():
    """A teacher map twice the student's: ``resize_student=True`` runs
    DiffKD on the bilinearly resized student; without it the sizes are
    refused, naming the switch."""
    import torch.nn.functional as F
    conn = connector(resize_student=True)
    f_s, f_t = torch.randn(2, 8, 2, 2), torch.randn(2, 16, 4, 4)
    torch.manual_seed(0)
    out = conn([f_s], [f_t], CTX)
    assert out.student[0].shape == (2, 16, 4, 4)
    resized = F.interpolate(f_s, size=(4, 4), mode='bilinear',
                            align_corners=False)
    torch.manual_seed(0)
    same = conn([resized], [f_t], CTX)
    for name in ('loss_kd', 'loss_diff'):
        torch.testing.assert_close(out.losses[name], same.losses[name])
    assert conn([f_s], None, CTX).student[0] is f_s  # inference: as is
    with pytest.raises(ValueError, match='resize_student=True'):
        connector()([f_s], [f_t], CTX)
