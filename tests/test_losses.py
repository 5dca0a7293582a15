"""Tests of mmkdflow.models.losses against independent re-computations."""
import math
import re
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from mmkdflow.models.losses import (AttentionMSELoss, BaseDistillLoss,
                                    ChannelWiseDivergence, DISTLoss, DKDLoss,
                                    KDLoss, MSELoss, PKDLoss,
                                    weight_reduce_loss)
from mmkdflow.models.core import DistillContext
from mmkdflow.registry import MODELS

B, K = 4, 5
FEAT = (2, 3, 4, 5)


def close(actual, expected, rtol=1e-5, atol=1e-6):
    torch.testing.assert_close(
        actual, torch.as_tensor(expected, dtype=actual.dtype),
        rtol=rtol, atol=atol)


def rand(*shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen)


def make_ctx(labels, epoch=0):
    samples = [SimpleNamespace(gt_label=torch.tensor([int(y)]))
               for y in labels]
    return DistillContext(data_samples=samples, epoch=epoch)


# ----------------------------------------------------------- references
def ref_softmax(row):
    exps = [math.exp(float(v)) for v in row]
    total = sum(exps)
    return [e / total for e in exps]


def ref_kl(p, q):
    """KL(p || q) of two probability lists."""
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)


def ref_kd_rows(s, t, T):
    """Per-row T^2 * KL(softmax(t/T) || softmax(s/T)) of (N, K) matrices."""
    return [T * T * ref_kl(ref_softmax(t[i] / T), ref_softmax(s[i] / T))
            for i in range(s.shape[0])]


def ref_dkd(s, t, labels, alpha, beta, T):
    """Mean over samples of alpha*TCKD + beta*NCKD, non-target by removal."""
    total = 0.0
    for i, y in enumerate(labels.tolist()):
        p_s, p_t = ref_softmax(s[i] / T), ref_softmax(t[i] / T)
        tckd = ref_kl([p_t[y], 1 - p_t[y]], [p_s[y], 1 - p_s[y]])
        others = [k for k in range(s.shape[1]) if k != y]
        q_s = ref_softmax(s[i, others] / T)
        q_t = ref_softmax(t[i, others] / T)
        total += T * T * (alpha * tckd + beta * ref_kl(q_t, q_s))
    return total / s.shape[0]


def ref_dist(s, t, beta, gamma, tau):
    p_s, p_t = (s / tau).softmax(1).double(), (t / tau).softmax(1).double()

    def corr(a, b):
        return torch.corrcoef(torch.stack([a, b]))[0, 1]

    inter = 1 - sum(corr(p_s[i], p_t[i]) for i in range(len(p_s))) / len(p_s)
    intra = 1 - sum(corr(p_s[:, k], p_t[:, k])
                    for k in range(p_s.shape[1])) / p_s.shape[1]
    return float(tau**2 * (beta * inter + gamma * intra))


def ref_pkd(s, t):
    total = 0.0
    for c in range(s.shape[1]):
        xs, xt = s[:, c].flatten().double(), t[:, c].flatten().double()
        ns = (xs - xs.mean()) / (xs.std(unbiased=False) + 1e-6)
        nt = (xt - xt.mean()) / (xt.std(unbiased=False) + 1e-6)
        total += float(((ns - nt)**2).sum())
    return total / s.numel() / 2


def ref_cwd_maps(s, t, tau):
    n, c = s.shape[:2]
    out = torch.zeros(n, c, dtype=torch.float64)
    for i in range(n):
        for j in range(c):
            p_t = ref_softmax(t[i, j].flatten() / tau)
            p_s = ref_softmax(s[i, j].flatten() / tau)
            out[i, j] = tau * tau * ref_kl(p_t, p_s)
    return out


def ref_attention(f, T):
    n, c, h, w = f.shape
    spatial = torch.zeros(n, h, w, dtype=torch.float64)
    channel = torch.zeros(n, c, dtype=torch.float64)
    for i in range(n):
        sp = [float(f[i, :, y, x].abs().mean()) / T
              for y in range(h) for x in range(w)]
        spatial[i] = h * w * torch.tensor(ref_softmax(sp)).reshape(h, w)
        ch = [float(f[i, j].abs().mean()) / T for j in range(c)]
        channel[i] = c * torch.tensor(ref_softmax(ch))
    return spatial, channel


# ------------------------------------------------------------------ KD
def test_kd_matches_reference_and_weight():
    s, t = rand(B, K, seed=1), rand(B, K, seed=2)
    expected = sum(ref_kd_rows(s, t, 2.0)) / B
    close(KDLoss(temperature=2.0)(s, t), expected)
    close(KDLoss(temperature=2.0, loss_weight=0.3)(s, t), 0.3 * expected)


def test_kd_temperature_squared_factor():
    s, t = rand(B, K, seed=3), rand(B, K, seed=4)
    kl = F.kl_div((s / 4).log_softmax(1), (t / 4).softmax(1),
                  reduction='batchmean')
    close(KDLoss(temperature=4.0)(s, t), 16 * kl)


def test_kd_reductions():
    s, t = rand(B, K, seed=5), rand(B, K, seed=6)
    rows = torch.tensor(ref_kd_rows(s, t, 1.0))
    close(KDLoss(reduction='batchmean')(s, t), rows.mean())
    close(KDLoss(reduction='mean')(s, t), rows.mean())
    close(KDLoss(reduction='sum')(s, t), rows.sum())
    none = KDLoss(reduction='none')(s, t)
    assert none.shape == (B, )
    close(none, rows)


def test_kd_dense_logits_are_flattened_per_pixel():
    s, t = rand(2, K, 3, 4, seed=7), rand(2, K, 3, 4, seed=8)
    rows_s = s.permute(0, 2, 3, 1).reshape(-1, K)
    rows_t = t.permute(0, 2, 3, 1).reshape(-1, K)
    per_pixel = torch.tensor(ref_kd_rows(rows_s, rows_t, 2.0))
    close(KDLoss(temperature=2.0)(s, t), per_pixel.mean())
    none = KDLoss(temperature=2.0, reduction='none')(s, t)
    assert none.shape == (2, 3, 4)
    expected_b1_h2_w3 = ref_kd_rows(s[1:2, :, 2, 3], t[1:2, :, 2, 3], 2.0)[0]
    close(none[1, 2, 3], expected_b1_h2_w3)


# ----------------------------------------------------------------- DKD
def test_dkd_matches_reference():
    s, t = rand(B, K, seed=9) * 3, rand(B, K, seed=10) * 3
    labels = torch.tensor([0, 3, 4, 1])
    loss = DKDLoss(alpha=0.5, beta=2.0, temperature=2.0, loss_weight=0.7)
    expected = ref_dkd(s, t, labels, 0.5, 2.0, 2.0)
    close(loss(s, t, make_ctx(labels)), 0.7 * expected)
    assert DKDLoss.requires_labels is True


def test_dkd_reductions():
    s, t = rand(B, K, seed=11), rand(B, K, seed=12)
    labels = torch.tensor([1, 1, 2, 0])
    ctx = make_ctx(labels)
    per_sample = torch.tensor([
        ref_dkd(s[i:i + 1], t[i:i + 1], labels[i:i + 1], 1.0, 8.0, 4.0)
        for i in range(B)
    ])
    close(DKDLoss(reduction='mean')(s, t, ctx), per_sample.mean())
    close(DKDLoss(reduction='sum')(s, t, ctx), per_sample.sum())
    close(DKDLoss(reduction='none')(s, t, ctx), per_sample)


def test_dkd_warmup_factor():
    s, t = rand(B, K, seed=13), rand(B, K, seed=14)
    labels = torch.tensor([2, 0, 4, 4])
    full = DKDLoss()(s, t, make_ctx(labels))
    loss = DKDLoss(warmup=5)
    close(loss(s, t, make_ctx(labels, epoch=0)), full / 5)
    close(loss(s, t, make_ctx(labels, epoch=2)), full * 3 / 5)
    close(loss(s, t, make_ctx(labels, epoch=4)), full)
    close(loss(s, t, make_ctx(labels, epoch=20)), full)


@pytest.mark.parametrize('name', ['alpha', 'beta'])
@pytest.mark.parametrize('value', [-1.0, float('nan')])
def test_dkd_refuses_negative_term_weights(name, value):
    with pytest.raises(ValueError, match=f'DKDLoss {name} must be >= 0'):
        DKDLoss(**{name: value})
    s, t = rand(B, K, seed=13), rand(B, K, seed=14)
    ctx = make_ctx(torch.tensor([2, 0, 4, 4]))
    # 0 switches the term off: alpha=0 leaves NCKD only, and the two add up
    close(DKDLoss(**{name: 0.0})(s, t, ctx) +
          DKDLoss(alpha=0.0 if name == 'beta' else 1.0,
                  beta=0.0 if name == 'alpha' else 8.0)(s, t, ctx),
          DKDLoss()(s, t, ctx))


def test_dkd_needs_context():
    with pytest.raises(ValueError, match='labels'):
        DKDLoss()(rand(B, K), rand(B, K, seed=1))


# ---------------------------------------------------------------- DIST
def test_dist_matches_reference():
    s, t = rand(B, K, seed=15), rand(B, K, seed=16)
    expected = ref_dist(s, t, beta=2.0, gamma=0.5, tau=3.0)
    loss = DISTLoss(beta=2.0, gamma=0.5, tau=3.0, loss_weight=1.5)
    close(loss(s, t), 1.5 * expected)


def test_dist_dense_logits_are_flattened_per_pixel():
    s, t = rand(2, K, 3, 4, seed=17), rand(2, K, 3, 4, seed=18)
    rows_s = s.permute(0, 2, 3, 1).reshape(-1, K)
    rows_t = t.permute(0, 2, 3, 1).reshape(-1, K)
    close(DISTLoss()(s, t), ref_dist(rows_s, rows_t, 1.0, 1.0, 1.0))


def test_dist_only_mean_reduction():
    with pytest.raises(ValueError, match="'mean'"):
        DISTLoss(reduction='sum')


# ----------------------------------------------------------------- PKD
def test_pkd_matches_reference():
    s, t = rand(*FEAT, seed=19), rand(*FEAT, seed=20) * 5 + 2
    close(PKDLoss(loss_weight=2.0)(s, t), 2.0 * ref_pkd(s, t))


def test_pkd_ignores_channel_scale_and_offset():
    s, t = rand(*FEAT, seed=21), rand(*FEAT, seed=22)
    scale = torch.tensor([0.5, 3.0, 10.0])[None, :, None, None]
    shifted = s * scale + torch.tensor([1.0, -4.0, 7.0])[None, :, None, None]
    close(PKDLoss()(shifted, t), PKDLoss()(s, t), rtol=1e-4, atol=1e-5)


def test_pkd_reductions_and_2d_inputs():
    s, t = rand(*FEAT, seed=23), rand(*FEAT, seed=24)
    mean = PKDLoss()(s, t)
    close(PKDLoss(reduction='sum')(s, t), mean * s.numel())
    none = PKDLoss(reduction='none')(s, t)
    assert none.shape == FEAT
    close(none.mean(), mean)
    s2, t2 = rand(B, K, seed=25), rand(B, K, seed=26)
    close(PKDLoss()(s2, t2), ref_pkd(s2[..., None, None], t2[..., None,
                                                             None]))


@pytest.mark.parametrize('cls,kwargs,shape', [
    (PKDLoss, {}, (2, 4, 3, 5)), (MSELoss, {}, (2, 4, 3, 5)),
    (KDLoss, dict(temperature=2.), (4, 7))])
def test_forward_steps_is_the_sum_of_forwards(cls, kwargs, shape):
    """One target for N students (an FM-KT trajectory): the sum of the
    single losses, with the target prepared once."""
    torch.manual_seed(0)
    loss = cls(loss_weight=3., **kwargs)
    students = [torch.randn(shape, requires_grad=True) for _ in range(3)]
    teacher = torch.randn(shape)
    prepared = []
    original = loss.prepare_target
    loss.prepare_target = lambda t: prepared.append(1) or original(t)
    total = loss.forward_steps(students, teacher)
    assert len(prepared) == 1
    torch.testing.assert_close(total, sum(loss(s, teacher) for s in students))
    total.backward()
    assert all(s.grad is not None for s in students)
    with pytest.raises(ValueError, match='at least one student'):
        loss.forward_steps([], teacher)


def test_pkd_prepared_target_is_the_normalised_teacher():
    teacher = torch.randn(3, 4, 2, 2) * 5 + 2
    target = PKDLoss().prepare_target(teacher)
    torch.testing.assert_close(target.mean((0, 2, 3)), torch.zeros(4),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(target.std((0, 2, 3), correction=0),
                               torch.ones(4), atol=1e-5, rtol=0)
    assert PKDLoss().prepare_target(torch.randn(3, 4)).shape == (3, 4, 1, 1)


def test_pkd_resize_student():
    s, t = rand(2, 3, 2, 3, seed=27), rand(*FEAT, seed=28)
    resized = F.interpolate(s, size=FEAT[2:], mode='bilinear',
                            align_corners=False)
    close(PKDLoss(resize_stu=True)(s, t), ref_pkd(resized, t))
    with pytest.raises(ValueError,
                       match=re.escape('(2, 3, 2, 3)') + '.*' +
                       re.escape('(2, 3, 4, 5)')):
        PKDLoss()(s, t)


# ----------------------------------------------------------------- MSE
def test_mse_reductions_and_weight():
    s, t = rand(*FEAT, seed=29), rand(*FEAT, seed=30)
    sq = [(float(a) - float(b))**2 for a, b in zip(s.flatten(), t.flatten())]
    close(MSELoss(loss_weight=4.0)(s, t), 4.0 * sum(sq) / len(sq))
    close(MSELoss(reduction='sum')(s, t), sum(sq))
    none = MSELoss(reduction='none')(s, t)
    assert none.shape == FEAT
    close(none.flatten(), torch.tensor(sq))


# ----------------------------------------------------------------- CWD
def test_cwd_matches_reference():
    s, t = rand(*FEAT, seed=31), rand(*FEAT, seed=32)
    maps = ref_cwd_maps(s, t, tau=2.0).float()
    n, c = FEAT[:2]
    close(ChannelWiseDivergence(tau=2.0, loss_weight=3.0)(s, t),
          3.0 * maps.sum() / (n * c))
    close(ChannelWiseDivergence(tau=2.0, reduction='sum')(s, t), maps.sum())
    none = ChannelWiseDivergence(tau=2.0, reduction='none')(s, t)
    assert none.shape == (n, c)
    close(none, maps)


# ------------------------------------------------------- attention MSE
def test_attention_mse_matches_reference():
    s, t = rand(*FEAT, seed=33), rand(*FEAT, seed=34)
    a_s, a_c = ref_attention(t, 0.5)
    weight = a_s[:, None] * a_c[:, :, None, None]
    weighted = ((s.double() - t.double())**2 * weight).float()
    close(AttentionMSELoss(loss_weight=2.0)(s, t), 2.0 * weighted.mean())
    close(AttentionMSELoss(reduction='sum')(s, t), weighted.sum(),
          rtol=1e-5, atol=1e-4)
    close(AttentionMSELoss(reduction='none')(s, t), weighted)


def test_attention_mse_equals_mse_with_uniform_attention():
    s = rand(*FEAT, seed=35)
    t = torch.sign(rand(*FEAT, seed=36)) * 0.7   # constant magnitude
    close(AttentionMSELoss()(s, t), F.mse_loss(s, t))


def test_attention_mse_imitation_term():
    s, t = rand(*FEAT, seed=37), rand(*FEAT, seed=38)
    as_t, ac_t = ref_attention(t, 0.5)
    as_s, ac_s = ref_attention(s, 0.5)
    imitation = (as_s - as_t).abs().mean() + (ac_s - ac_t).abs().mean()
    base = AttentionMSELoss()(s, t)
    close(AttentionMSELoss(alpha_at=0.25)(s, t),
          base + 0.25 * imitation.float())
    with pytest.raises(ValueError, match='alpha_at'):
        AttentionMSELoss(alpha_at=1.0, reduction='none')


# --------------------------------------------------------------- common
ZERO_WHEN_EQUAL = [
    (KDLoss, dict(temperature=4.0), (B, K)),
    (DISTLoss, dict(), (B, K)),
    (PKDLoss, dict(), FEAT),
    (MSELoss, dict(), FEAT),
    (ChannelWiseDivergence, dict(), FEAT),
    (AttentionMSELoss, dict(alpha_at=1.0), FEAT),
]


@pytest.mark.parametrize('cls,kwargs,shape', ZERO_WHEN_EQUAL)
def test_identical_inputs_give_zero(cls, kwargs, shape):
    x = rand(*shape, seed=39)
    close(cls(**kwargs)(x, x.clone()), 0.0, atol=1e-6)
    assert float(cls(**kwargs)(x, rand(*shape, seed=40))) > 1e-3


ALL_LOSSES = ZERO_WHEN_EQUAL + [(DKDLoss, dict(), (B, K))]


@pytest.mark.parametrize('cls,kwargs,shape', ALL_LOSSES)
def test_gradient_reaches_student_only(cls, kwargs, shape):
    student = rand(*shape, seed=41).requires_grad_()
    teacher = rand(*shape, seed=42).requires_grad_()
    ctx = make_ctx(range(shape[0]))
    loss = cls(**kwargs)(student, teacher, ctx)
    assert loss.dim() == 0
    loss.backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


@pytest.mark.parametrize('cls,kwargs,shape', ALL_LOSSES)
def test_shape_mismatch_names_both_shapes(cls, kwargs, shape):
    bigger = (shape[0], shape[1] * 2) + tuple(shape[2:])
    with pytest.raises(ValueError) as err:
        cls(**kwargs)(rand(*shape), rand(*bigger), make_ctx(range(shape[0])))
    message = str(err.value)
    assert str(tuple(shape)) in message and str(bigger) in message
    assert 'connector' in message


def test_shape_mismatch_message_for_features():
    with pytest.raises(ValueError,
                       match=re.escape('student (2, 128, 8, 8) vs teacher '
                                       '(2, 256, 8, 8)') + '.*ConvAdapter'):
        MSELoss()(torch.zeros(2, 128, 8, 8), torch.zeros(2, 256, 8, 8))


@pytest.mark.parametrize('cls', [c for c, _, _ in ALL_LOSSES])
def test_invalid_reduction_names_allowed_values(cls):
    with pytest.raises(ValueError, match="reduction must be one of.*'mean'"):
        cls(reduction='average')


@pytest.mark.parametrize('cls,kwargs,shape', ALL_LOSSES)
def test_low_precision_inputs_computed_in_fp32(cls, kwargs, shape):
    s = rand(*shape, seed=43).bfloat16()
    t = rand(*shape, seed=44).bfloat16()
    ctx = make_ctx(range(shape[0]))
    expected = cls(**kwargs)(s.float(), t.float(), ctx)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        loss = cls(**kwargs)(s, t, ctx)
    assert loss.dtype == torch.float32
    close(loss, expected)


@pytest.mark.parametrize('cfg,attrs', [
    (dict(type='KDLoss', temperature=4.0), dict(temperature=4.0)),
    (dict(type='DKDLoss', beta=2.0, warmup=3), dict(beta=2.0, warmup=3)),
    (dict(type='DISTLoss', beta=2.0, gamma=2.0), dict(beta=2.0, gamma=2.0)),
    (dict(type='PKDLoss', resize_stu=True), dict(resize_stu=True)),
    (dict(type='MSELoss', loss_weight=5.0), dict(loss_weight=5.0)),
    (dict(type='ChannelWiseDivergence', tau=3.0), dict(tau=3.0)),
    (dict(type='AttentionMSELoss', temperature=0.8), dict(temperature=0.8)),
])
def test_build_by_name(cfg, attrs):
    loss = MODELS.build(cfg)
    assert isinstance(loss, BaseDistillLoss)
    assert type(loss).__name__ == cfg['type']
    for name, value in attrs.items():
        assert getattr(loss, name) == value


# -------------------------------------- weight, avg_factor, override
def test_weight_reduce_loss_is_mmdets():
    loss = torch.tensor([1., 2., 3., 4.])
    weight = torch.tensor([1., 0., 2., 1.])
    close(weight_reduce_loss(loss, weight, 'sum'), 11.)
    close(weight_reduce_loss(loss, weight, 'mean'), 11. / 4)
    close(weight_reduce_loss(loss, weight, 'mean', avg_factor=2.), 5.5)
    close(weight_reduce_loss(loss, weight, 'none'), loss * weight)
    close(weight_reduce_loss(loss), 2.5)
    with pytest.raises(ValueError, match='avg_factor'):
        weight_reduce_loss(loss, reduction='sum', avg_factor=2.)


@pytest.mark.parametrize('cls,kwargs,shape,item_shape', [
    (MSELoss, {}, FEAT, FEAT),
    (PKDLoss, {}, FEAT, FEAT),
    (KDLoss, dict(temperature=2.), (B, K), (B, )),
    (KDLoss, {}, (2, K, 3, 4), (2, 3, 4)),
    (DKDLoss, {}, (B, K), (B, )),
    (ChannelWiseDivergence, {}, FEAT, FEAT[:2]),
    (AttentionMSELoss, {}, FEAT, FEAT),
])
def test_weight_avg_factor_and_reduction_override(cls, kwargs, shape,
                                                  item_shape):
    """Every loss: forward(weight=w) reduces w * l (l = its 'none'
    output), avg_factor divides the sum, reduction_override replaces the
    configured reduction for one call; loss_weight applies on top."""
    s, t = rand(*shape, seed=45), rand(*shape, seed=46)
    ctx = make_ctx(torch.arange(shape[0]) % K)
    items = cls(reduction='none', **kwargs)(s, t, ctx)
    assert items.shape == item_shape
    w = rand(*item_shape, seed=47).abs()
    loss = cls(loss_weight=2., **kwargs)
    close(loss(s, t, ctx, weight=w), 2. * (items * w).mean())
    close(loss(s, t, ctx, weight=w, avg_factor=3.),
          2. * (items * w).sum() / 3.)
    close(loss(s, t, ctx, reduction_override='sum'), 2. * items.sum())
    close(loss(s, t, ctx, weight=w, reduction_override='none'),
          2. * items * w)
    with pytest.raises(ValueError, match='reduction must be one of'):
        loss(s, t, ctx, reduction_override='average')


def test_dist_weight_scales_its_scalar():
    s, t = rand(B, K, seed=48), rand(B, K, seed=49)
    loss = DISTLoss()
    close(loss(s, t, weight=torch.tensor(0.5)), 0.5 * loss(s, t))
    close(loss(s, t, avg_factor=4.), loss(s, t) / 4.)


def test_attention_imitation_refuses_a_none_override():
    s, t = rand(*FEAT, seed=50), rand(*FEAT, seed=51)
    with pytest.raises(ValueError, match='alpha_at'):
        AttentionMSELoss(alpha_at=0.5)(s, t, reduction_override='none')
