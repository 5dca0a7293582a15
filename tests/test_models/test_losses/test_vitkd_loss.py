"""ViTKDLoss against a direct computation of ViTKD's equations
(arXiv:2209.02432): mimicking of shallow layers through a linear map,
generation of the deep layer from masked tokens."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmkdflow.models.losses import ViTKDLoss
from mmkdflow.models.losses.vitkd_loss import random_token_mask
from mmkdflow.models.utils import build_mmkdflow_module

B, N, CS, CT = 3, 16, 8, 12  # 16 patch tokens: a 4 x 4 grid


def tokens(channels, extra=1, seed=0, batch=B, patches=N):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, patches + extra, channels, generator=gen)


def perturbed(loss):
    """Move the zero-initialised mask token off zero."""
    if hasattr(loss, 'mask_token'):
        with torch.no_grad():
            loss.mask_token.normal_()
    return loss


def test_registered_and_built_from_config():
    loss = build_mmkdflow_module(dict(
        type='ViTKDLoss', student_dims=CS, teacher_dims=CT, mode='generate',
        loss_weight=3e-6))
    assert isinstance(loss, ViTKDLoss) and loss.mode == 'generate'
    assert loss.loss_weight == 3e-6 and loss.reduction == 'batchmean'


def test_mimic_equals_the_sum_of_squared_errors_per_image():
    loss = ViTKDLoss(CS, CT, mode='mimic', loss_weight=0.5)
    s, t = tokens(CS), tokens(CT, seed=1)
    proj = s[:, 1:] @ loss.align_proj.weight.T + loss.align_proj.bias
    direct = (t[:, 1:] - proj).pow(2).sum() / B
    assert torch.allclose(loss(s, t), 0.5 * direct, rtol=1e-5)


def test_generate_equals_the_masked_generation_error():
    lam = 0.5
    loss = perturbed(ViTKDLoss(CS, CT, mode='generate', mask_ratio=lam))
    s, t = tokens(CS), tokens(CT, seed=1)
    torch.manual_seed(7)
    value = loss(s, t)
    torch.manual_seed(7)  # the same draw, made directly
    noise = torch.rand(B, N)
    keep = noise.argsort(dim=1)[:, :int(N * (1 - lam))]
    mask = torch.ones(B, N).scatter(1, keep, 0.).unsqueeze(-1)
    x = s[:, 1:] @ loss.align_proj.weight.T + loss.align_proj.bias
    x = x * (1 - mask) + loss.mask_token * mask
    side = int(math.sqrt(N))
    x = x.transpose(1, 2).reshape(B, CT, side, side)
    g1, g2 = loss.generation[0], loss.generation[2]
    x = F.conv2d(F.relu(F.conv2d(x, g1.weight, g1.bias, padding=1)),
                 g2.weight, g2.bias, padding=1)
    x = x.flatten(2).transpose(1, 2)
    direct = ((t[:, 1:] - x).pow(2) * mask).sum() / B / lam
    assert torch.allclose(value, direct, rtol=1e-5)


@pytest.mark.parametrize('lam', [0.25, 0.5, 0.75])
def test_mask_hides_the_ratio_of_tokens(lam):
    mask = random_token_mask(4, N, lam)
    assert mask.shape == (4, N)
    assert torch.equal(mask.sum(1), torch.full((4, ), float(
        N - int(N * (1 - lam)))))
    assert set(mask.unique().tolist()) <= {0., 1.}


def test_only_masked_teacher_tokens_count():
    loss = ViTKDLoss(CS, CT, mode='generate')
    s, t = tokens(CS), tokens(CT, seed=1)
    torch.manual_seed(3)
    mask = random_token_mask(B, N, 0.5)
    changed = t.clone()
    changed[:, 1:][mask == 0] += 10.
    torch.manual_seed(3)
    before = loss(s, t)
    torch.manual_seed(3)
    assert torch.allclose(loss(s, changed), before)


def test_gradients_reach_student_and_loss_parameters_not_teacher():
    loss = perturbed(ViTKDLoss(CS, CT, mode='generate'))
    s = tokens(CS).requires_grad_()
    t = tokens(CT, seed=1).requires_grad_()
    loss(s, t).backward()
    assert s.grad.abs().sum() > 0 and t.grad is None
    assert not s.grad[:, 0].any()  # the class token is not distilled
    for name, p in loss.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_equal_widths_need_no_projection():
    loss = ViTKDLoss(CT, CT, mode='mimic')
    assert isinstance(loss.align_proj, torch.nn.Identity)
    assert not any(True for _ in loss.parameters())
    s, t = tokens(CT), tokens(CT, seed=1)
    assert torch.allclose(loss(s, t), (s - t)[:, 1:].pow(2).sum() / B)


def test_reductions_and_extra_tokens():
    s, t = tokens(CS, extra=2), tokens(CT, extra=2, seed=1)
    loss = ViTKDLoss(CS, CT, num_extra_tokens=2)
    per_image = loss(s, t, reduction_override='none')
    assert per_image.shape == (B, )
    assert torch.allclose(loss(s, t, reduction_override='sum'),
                          per_image.sum())
    assert torch.allclose(loss(s, t), per_image.mean())
    with pytest.raises(ValueError, match='reduction must be one of'):
        ViTKDLoss(CS, CT, reduction='mean')


def test_bf16_tokens_give_a_float32_loss():
    loss = ViTKDLoss(CS, CT, mode='generate')
    value = loss(tokens(CS).bfloat16(), tokens(CT, seed=1).bfloat16())
    assert value.dtype == torch.float32 and torch.isfinite(value)


@pytest.mark.parametrize('student, teacher, match', [
    (torch.randn(B, CS, 4, 4), torch.randn(B, CT, 4, 4),
     r'takes token tensors \(B, N, C\)'),
    (tokens(CS + 1), tokens(CT), f'set student_dims={CS + 1}'),
    (tokens(CS), tokens(CT + 2), f'set teacher_dims={CT + 2}'),
    (tokens(CS), tokens(CT, patches=9), 'token counts must match'),
    (tokens(CS, patches=0, extra=1), tokens(CT, patches=0, extra=1),
     'no patch token'),
])
def test_wrong_shapes_are_refused_naming_the_fix(student, teacher, match):
    with pytest.raises(ValueError, match=match):
        ViTKDLoss(CS, CT)(student, teacher)


def test_generation_needs_a_square_grid():
    s, t = tokens(CS, patches=12), tokens(CT, patches=12)
    assert torch.isfinite(ViTKDLoss(CS, CT, mode='mimic')(s, t))
    with pytest.raises(ValueError, match='square grid'):
        ViTKDLoss(CS, CT, mode='generate')(s, t)


@pytest.mark.parametrize('kwargs, match', [
    (dict(mode='mimick'), 'mode must be one of'),
    (dict(mask_ratio=1.0), r'mask_ratio \(lambda\) must be in'),
    (dict(mask_ratio=0.0), r'mask_ratio \(lambda\) must be in'),
    (dict(student_dims=0), 'student_dims must be a positive int'),
    (dict(num_extra_tokens=-1), 'num_extra_tokens must be'),
    (dict(loss_weight=-1.0), 'loss_weight'),
])
def test_bad_settings_are_refused(kwargs, match):
    args = dict(dict(student_dims=CS, teacher_dims=CT), **kwargs)
    with pytest.raises(ValueError, match=match):
        ViTKDLoss(**args)
