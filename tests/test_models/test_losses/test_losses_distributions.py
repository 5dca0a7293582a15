"""KD, DKD, DIST, CWD and attention MSE against softmax re-computations."""
import math

import pytest
import torch
import torch.nn.functional as F
from utils import B, FEAT, K, close, make_ctx, rand

from mmkdflow.models.losses import (AttentionMSELoss, ChannelWiseDivergence,
                                    DISTLoss, DKDLoss, KDLoss)


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
