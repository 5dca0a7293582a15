"""FM-KT: flows, meta-encoders, the connector, and the per-pixel logit
flow on a real segmentor. (Real detectors and classifiers at inference and
their export: test_fmkt_export.py; flow EMA: test_fmkt_e2e.py.)"""
import pytest
import torch
import torch.nn as nn

from mmkdflow.models import Distiller
from mmkdflow.models.fmkt import (META_ENCODERS, FlowLogitHead,
                                  FMKTConnector, TimeEmbedding,
                                  build_meta_encoder, build_schedule,
                                  decoupling_permutation, euler_sample)
from mmkdflow.models.losses import BaseDistillLoss, KDLoss
from mmkdflow.models.core import DistillContext
from mmkdflow.models.utils import build_mmkdflow_module

F64 = dict(dtype=torch.float64)


class ExactVelocity(nn.Module):
    """A meta-encoder stub returning a fixed velocity whatever its input."""

    def __init__(self, v=None):
        super().__init__()
        self.v = v

    def forward(self, x):
        return self.v


def perturb_gains(conn, seed=0):
    """Move every velocity gain off its identity start (0), so the flow
    does something."""
    gen = torch.Generator().manual_seed(seed)
    for field in conn.flows.fields.values():
        with torch.no_grad():
            field.velocity_gain.copy_(torch.randn(
                field.velocity_gain.shape, generator=gen))
    return conn


def pair(shape=(2, 4, 3, 3), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, **F64), \
        torch.randn(*shape, generator=gen, **F64)


def interpolant_velocity(schedule, teacher, z):
    """The exact velocity of the path x_t = a_t X_T + s_t eps through the
    start x_1 = Z, as a field that ignores x."""
    one = torch.tensor(1., **F64)
    eps = (z - schedule.alpha(one) * teacher) / schedule.sigma(one)

    def velocity(x, t):
        t = torch.tensor(t, **F64)
        return schedule.d_alpha(t) * teacher + schedule.d_sigma(t) * eps
    return velocity


@pytest.mark.parametrize('num_steps', [1, 4, 7])
def test_rectified_exact_velocity_hits_teacher(num_steps):
    teacher, z = pair()
    conn = FMKTConnector(4, meta_encoder=ExactVelocity(z - teacher),
                         num_steps=num_steps, init='released').double()
    traj = conn.flow(z, num_steps=num_steps)
    assert len(traj.predictions) == num_steps
    assert traj.times == [i / num_steps for i in range(num_steps, 0, -1)]
    for pred in traj.predictions:
        torch.testing.assert_close(pred, teacher, rtol=0, atol=1e-12)
    torch.testing.assert_close(traj.end, teacher, rtol=0, atol=1e-12)
    out = conn([z], None, DistillContext(training=False))
    torch.testing.assert_close(out.student[0], teacher, rtol=0, atol=1e-12)


def test_teacher_prediction_formulas():
    rect = build_schedule('rectified')
    x, v = pair()
    # start-anchored rectified flow is exactly the released Z - v
    assert torch.equal(rect.teacher_prediction(x, v, 0.75, s=1.0), x - v)
    torch.testing.assert_close(rect.teacher_prediction(x, v, 0.75),
                               x - 0.75 * v)
    # the state-anchored formula inverts the conditional field exactly
    teacher, z = pair(seed=1)
    for name in ('rectified', 'vp', 've'):
        s = build_schedule(name)

        def field(xt, t):
            t = torch.tensor(t, **F64)
            eps = (xt - s.alpha(t) * teacher) / s.sigma(t)
            return s.d_alpha(t) * teacher + s.d_sigma(t) * eps
        traj = euler_sample(field, z, 5, s, anchor='state')
        for pred in traj.predictions:
            torch.testing.assert_close(pred, teacher)


@pytest.mark.parametrize('name', ['vp', 've'])
def test_vp_ve_euler_end_point_converges(name):
    schedule = build_schedule(name)
    teacher, z = pair()
    velocity = interpolant_velocity(schedule, teacher, z)
    errors = []
    for n in (1, 4, 16, 64):
        traj = euler_sample(velocity, z, n, schedule)
        for pred in traj.predictions:  # exact velocity: exact predictions
            torch.testing.assert_close(pred, teacher)
        errors.append((traj.end - teacher).abs().max().item())
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.05 * errors[0]


def test_schedule_derivatives_and_ends():
    t = torch.linspace(0.05, 0.95, 7, **F64)
    for name in ('rectified', 'vp', 've'):
        s, h = build_schedule(name), 1e-6
        torch.testing.assert_close(
            s.d_alpha(t), (s.alpha(t + h) - s.alpha(t - h)) / (2 * h))
        torch.testing.assert_close(
            s.d_sigma(t), (s.sigma(t + h) - s.sigma(t - h)) / (2 * h))
    zero, one = torch.tensor(0., **F64), torch.tensor(1., **F64)
    assert build_schedule('vp').alpha(zero) == 1
    ve = build_schedule('ve', sigma_min=0.02, sigma_max=3.)
    torch.testing.assert_close(ve.sigma(one), torch.tensor(3., **F64))
    with pytest.raises(KeyError, match='rectified'):
        build_schedule('cosine')


def test_mean_prediction_is_euler_end_point():
    torch.manual_seed(0)
    conn = perturb_gains(FMKTConnector(8, meta_encoder='conv', num_steps=6))
    z = torch.randn(2, 8, 5, 5)
    traj = conn.flow(z, num_steps=6)
    torch.testing.assert_close(traj.mean, traj.end, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(traj.predictions[0], traj.predictions[-1])
    out = conn([z], None, DistillContext(training=False)).student[0]
    torch.testing.assert_close(out, traj.mean)


def test_teacher_never_reaches_meta_encoder_input():
    torch.manual_seed(0)
    conn = perturb_gains(FMKTConnector(8, meta_encoder='convnext',
                                       num_steps=3, dirac_ratio=0.5))
    seen = []
    conn.field(0).meta_encoder.register_forward_pre_hook(
        lambda mod, args: seen.append(args[0]))
    z = torch.randn(4, 8, 6, 6)
    teacher = torch.randn(4, 8, 6, 6, requires_grad=True)
    ctx = DistillContext()
    loss_a = conn([z], [teacher], ctx).losses['loss_flow']
    inputs_a, seen[:] = list(seen), []
    loss_b = conn([z], [torch.randn(4, 8, 6, 6) * 5], ctx).losses['loss_flow']
    assert len(inputs_a) == len(seen) == 3
    for a, b in zip(inputs_a, seen):
        assert torch.equal(a, b)
    assert not torch.isclose(loss_a, loss_b)
    grads = torch.autograd.grad(sum(i.sum() for i in inputs_a), teacher,
                                allow_unused=True)
    assert grads[0] is None or not grads[0].any()


@pytest.mark.parametrize('ratio,batch', [(1.0, 8), (0.5, 8), (0.25, 8),
                                         (0.0, 8), (0.7, 10), (0.9, 8)])
def test_decoupling_permutation_moves_exactly_m(ratio, batch):
    perm = decoupling_permutation(batch, ratio)
    m = round((1 - ratio) * batch)
    assert sorted(perm.tolist()) == list(range(batch))
    assert int((perm != torch.arange(batch)).sum()) == (m if m >= 2 else 0)


class Recorder(BaseDistillLoss):
    """A distance that records the targets it is given."""

    def __init__(self):
        super().__init__()
        self.targets = []

    def compute_loss(self, student, teacher, ctx):
        self.targets.append(teacher)
        return (student - teacher).pow(2)


def test_pair_decoupling_never_touches_teacher():
    torch.manual_seed(0)
    conn = FMKTConnector(4, meta_encoder='conv', num_steps=2,
                         dirac_ratio=0.5)
    conn.distance = Recorder()
    teacher = [torch.randn(8, 4, 3, 3), torch.randn(8, 4, 2, 2)]
    clones, ptrs = [t.clone() for t in teacher], [
        t.data_ptr() for t in teacher]
    conn([torch.randn(8, 4, 3, 3), torch.randn(8, 4, 2, 2)], teacher,
         DistillContext())
    for t, c, p in zip(teacher, clones, ptrs):
        assert torch.equal(t, c) and t.data_ptr() == p
    moved = []
    for level, target in zip([0, 0, 1, 1], conn.distance.targets):
        rows = [int(torch.nonzero((teacher[level] == r).flatten(1).all(1))[0])
                for r in target]
        assert sorted(rows) == list(range(8))
        moved.append(rows)
    assert moved[0] == moved[1] == moved[2] == moved[3]  # one permutation
    assert sum(r != i for i, r in enumerate(moved[0])) == 4


def test_released_pair_decoupling_at_the_released_setting():
    """``decoupling='released'`` at the released classification setting
    (logit flow, dirac_ratio 0.5): the first int((1 - 0.5) B) rows of the
    teacher logits permuted by one randperm, the rest in place, on a copy
    (the released code writes the same rows into the teacher itself)."""
    from mmpretrain.structures import DataSample
    conn = FMKTConnector(8, 'mlp', num_steps=2, head_mode=True,
                         num_classes=5, dirac_ratio=0.5,
                         decoupling='released')
    conn.distance = Recorder()
    z, y_t = torch.randn(8, 8, 3, 3), torch.randn(8, 5)
    kept = y_t.clone()
    ctx = DistillContext([DataSample().set_gt_label(i % 5)
                          for i in range(8)])
    torch.manual_seed(3)
    conn([z], [y_t], ctx)
    torch.manual_seed(3)
    released = y_t.clone()
    released[:4] = released[:4][torch.randperm(int((1 - 0.5) * 8))]
    assert torch.equal(y_t, kept)  # the teacher is untouched
    assert len(conn.distance.targets) == 2  # one target for the N steps
    assert torch.equal(conn.distance.targets[0], released)
    assert not torch.equal(released, y_t)


def test_released_pair_decoupling_draws_per_level_with_a_flow():
    """FPN levels: one randperm per level that has a flow, in level order
    (none for a level of weight 0); with B = 3 and dirac_ratio 0.5 the
    first int(1.5) = 1 row cannot move."""
    conn = FMKTConnector(4, 'conv', num_steps=1, dirac_ratio=0.25,
                         decoupling='released', level_weights=[1., 0., 1.])
    conn.distance = Recorder()
    student = [torch.randn(8, 4, 2, 2) for _ in range(3)]
    teacher = [torch.randn(8, 4, 2, 2) for _ in range(3)]
    torch.manual_seed(5)
    conn(student, teacher, DistillContext())
    torch.manual_seed(5)
    want = []
    for level in (0, 2):
        m = int((1 - 0.25) * 8)
        t = teacher[level].clone()
        t[:m] = t[:m][torch.randperm(m)]
        want.append(t)
    for got, expected in zip(conn.distance.targets, want):
        assert torch.equal(got, expected)
    small = FMKTConnector(4, 'conv', num_steps=1, dirac_ratio=0.5,
                          decoupling='released')
    small.distance = Recorder()
    t3 = torch.randn(3, 4, 2, 2)
    small([torch.randn(3, 4, 2, 2)], [t3], DistillContext())
    assert torch.equal(small.distance.targets[0], t3)
    with pytest.raises(ValueError, match="'cycle', 'released'"):
        FMKTConnector(4, 'conv', dirac_ratio=0.5, decoupling='shuffle')


def test_users_register_their_own_meta_encoder(registered_for_test):
    from mmkdflow.registry import MODELS

    class ScaledConvEncoder(nn.Conv2d):
        def __init__(self, channels, scale=1.):
            super().__init__(channels, channels, 1)
            self.scale = scale

        def forward(self, x):
            return self.scale * super().forward(x)

    registered_for_test(MODELS, ScaledConvEncoder)
    conn = FMKTConnector(4, dict(type='ScaledConvEncoder', scale=2.),
                         num_steps=2)
    encoder = conn.field(0).meta_encoder
    assert isinstance(encoder, ScaledConvEncoder) and encoder.scale == 2.
    out = conn([torch.randn(2, 4, 3, 3)], [torch.randn(2, 4, 3, 3)],
               DistillContext())
    assert torch.isfinite(out.losses['loss_flow'])
    with pytest.raises(KeyError, match='register your own'):
        build_meta_encoder('NoSuchEncoder', 4)


def test_meta_encoder_parameter_counts():
    c = 256
    hand = dict(
        conv=2 * 9 * c * c + 2 * c,  # two bias-free 3x3 convs, GN(1)
        resconv=2 * (9 * c * c + 2 * c),
        mlp=2 * (c * c + c) + 2 * c,
        # released structure: one LayerNorm per block, used twice
        convnext=2 * (49 * c + c + 2 * c + 4 * c * c + 4 * c + 4 * c * c + c
                      + c),
        conv_det=2 * (c * c + 2 * c + 9 * c * c + 2 * c) + c * c + c,
        transformer=2 * c + (3 * 256 * c + 3 * 256) + (256 * c + c)
        + 4 * (13 * 13 + 3 * 3) + 2 * c + (1024 * c + 1024) + (1024 * c + c))
    assert set(hand) == set(META_ENCODERS)
    for name, count in hand.items():
        enc = build_meta_encoder(name, c)
        assert sum(p.numel() for p in enc.parameters()) == count, name
        assert type(enc) is type(build_meta_encoder(
            dict(type=META_ENCODERS[name]), c))
    assert hand['conv'] == 1180160 and hand['convnext'] == 1078272
    # the switches: two LayerNorms per convnext block; bias-free mlp convs
    assert sum(p.numel() for p in build_meta_encoder(
        dict(type='convnext', shared_norm=False), c).parameters()) == \
        hand['convnext'] + 2 * 2 * c
    assert sum(p.numel() for p in build_meta_encoder(
        dict(type='mlp', bias=False), c).parameters()) == 2 * c * c + 2 * c
    x = torch.randn(1, 16, 13, 9)
    for name in META_ENCODERS:
        assert build_meta_encoder(name, 16)(x).shape == x.shape
    with pytest.raises(KeyError, match='convnext'):
        build_meta_encoder('unet', 16)


def test_window_attention_masks_padding():
    torch.manual_seed(0)
    enc = build_meta_encoder('transformer', 8)
    assert enc.window_for(14) == 7 and enc.window_for(13) == 2
    x = torch.randn(2, 8, 1, 1)  # padded to one 2x2 window with 1 real key
    v = enc.qkv(enc.norm1(x).flatten(2).transpose(1, 2)).chunk(3, -1)[2]
    torch.testing.assert_close(enc.attention(enc.norm1(x)),
                               enc.proj(v).transpose(1, 2)[..., None])


def test_convnext_layer_scale_trains():
    torch.manual_seed(0)
    conn = FMKTConnector(8, meta_encoder='convnext', num_steps=2)
    perturb_gains(conn)
    gammas = [b.gamma for b in conn.field(0).meta_encoder]
    assert all(torch.equal(g, torch.full((8, ), 1e-6)) for g in gammas)
    out = conn([torch.randn(2, 8, 4, 4)], [torch.randn(2, 8, 4, 4)],
               DistillContext())
    out.losses['loss_flow'].backward()
    assert all(g.grad is not None and g.grad.abs().sum() > 0 for g in gammas)


def test_time_embedding_shapes():
    emb = TimeEmbedding(6)
    assert emb(0.5, 3).shape == (3, 6, 1, 1)
    assert TimeEmbedding(6, 'mlp')(torch.rand(3), ndim=2).shape == (3, 6)


@pytest.mark.parametrize('mode', ['linear', 'mlp'])
def test_time_embedding_steps_equal_per_step_embeddings(mode):
    torch.manual_seed(0)
    emb = TimeEmbedding(6, mode)
    table = emb.steps(4)
    assert list(table) == [1.0, 0.75, 0.5, 0.25]
    for t, row in table.items():
        assert row.shape == (1, 6, 1, 1)
        torch.testing.assert_close(row, emb(t, 1))
        # the same rows as a (B,) tensor of times, and one row expanded
        torch.testing.assert_close(emb(torch.full((3, ), t), 3), emb(t, 3))


def test_one_time_embedding_call_per_forward_for_all_levels():
    """The N time embeddings are computed once per forward, in one batched
    MLP call, and shared by every level (not once per step and level)."""
    torch.manual_seed(0)
    conn = FMKTConnector(8, 'convnext', num_steps=3,
                         distance=dict(type='MSELoss'))
    calls = []
    perturb_gains(conn)
    conn.field(0).time_embed.proj.register_forward_hook(
        lambda mod, args, out: calls.append(args[0].shape[0]))
    shapes = [(2, 8, 6, 6), (2, 8, 3, 3), (2, 8, 2, 2)]
    student = [torch.randn(s) for s in shapes]
    out = conn(student, [torch.randn(s) for s in shapes], DistillContext())
    assert calls == [3]
    # identical to running each level's flow with per-step embeddings
    for z, got in zip(student, out.student):
        field = conn.field(0)
        want = euler_sample(lambda x, t: field(x, t), z, 3).mean
        torch.testing.assert_close(got, want)
        # the flow runs channels-last; the head gets the default layout
        assert got.is_contiguous()


@pytest.mark.parametrize('shared_norm', [True, False])
def test_convnext_block_math_in_channels_last(shared_norm):
    """The channels-last block equals the NCHW formula, for both input
    layouts, and hands channels-last tensors on (no copies in later
    blocks). ``shared_norm=True`` (released): the same LayerNorm before
    the MLP and after the residual add."""
    torch.manual_seed(0)
    enc = build_meta_encoder(dict(type='convnext', shared_norm=shared_norm),
                             8)
    for block in enc:
        nn.init.normal_(block.gamma)
        nn.init.normal_(block.norm.weight)
    x = torch.randn(2, 8, 5, 7, **F64)
    enc = enc.double()

    def reference(block, x):
        y = nn.functional.conv2d(x, block.dwconv.weight, block.dwconv.bias,
                                 padding=3, groups=8)
        y = y.permute(0, 2, 3, 1).contiguous()
        y = nn.functional.layer_norm(y, (8, ), block.norm.weight,
                                     block.norm.bias, block.norm.eps)
        y = block.fc2(nn.functional.gelu(block.fc1(y))) * block.gamma
        y = x + y.permute(0, 3, 1, 2)
        mean = y.mean(1, keepdim=True)
        var = y.var(1, keepdim=True, unbiased=False)
        post = block.norm if shared_norm else block.post_norm
        assert (block.post_norm is None) == shared_norm
        return (y - mean) / (var + post.eps).sqrt() * \
            post.weight[:, None, None] + post.bias[:, None, None]

    want = reference(enc[1], reference(enc[0], x))
    for inp in (x, x.contiguous(memory_format=torch.channels_last)):
        got = enc(inp)
        torch.testing.assert_close(got, want)
        assert got.is_contiguous(memory_format=torch.channels_last)


def test_logit_flow_math_and_online():
    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    conn = build_mmkdflow_module(dict(
        type='FMKTConnector', channels=8, meta_encoder='mlp', num_steps=3,
        head_mode=True, num_classes=5, level_weights=[2.],
        distance=dict(type='KDLoss', temperature=4.)))
    perturb_gains(conn)
    z, y_t = torch.randn(4, 8, 3, 3), torch.randn(4, 5)
    ctx = DistillContext([DataSample().set_gt_label(i) for i in range(4)])
    out = conn([z], [y_t], ctx)
    logits = [conn.classify(p) for p in conn.flow(z, num_steps=3).predictions]
    torch.testing.assert_close(out.student[0], sum(logits) / 3)
    kd, labels = KDLoss(temperature=4.), torch.arange(4)
    torch.testing.assert_close(out.losses['loss_flow'],
                               2 / 3 * sum(kd(o, y_t) for o in logits))
    torch.testing.assert_close(out.losses['loss_ce'], 2 / 3 * sum(
        nn.functional.cross_entropy(o, labels) for o in logits))
    online = FMKTConnector(8, 'mlp', num_steps=2, head_mode=True,
                           num_classes=5, online=True,
                           distance=dict(type='KDLoss'))
    assert set(online([z], None, ctx).losses) == {'loss_flow', 'loss_ce'}
    assert not online([z], None, DistillContext(training=False)).losses


def test_random_steps_in_training_fixed_at_test():
    torch.manual_seed(0)
    conn = FMKTConnector(4, 'conv', num_steps=4, num_steps_test=3,
                         num_steps_choices=(1, 2, 8))
    calls = []
    conn.field(0).meta_encoder.register_forward_hook(
        lambda *a: calls.append(1))
    counts = set()
    for _ in range(12):
        calls.clear()
        conn([torch.randn(2, 4, 2, 2)], [torch.randn(2, 4, 2, 2)],
             DistillContext())
        counts.add(len(calls))
    assert counts <= {1, 2, 8} and len(counts) > 1
    calls.clear()
    conn([torch.randn(2, 4, 2, 2)], None, DistillContext(training=False))
    assert len(calls) == 3


def test_one_flow_per_level_when_not_shared():
    conn = perturb_gains(FMKTConnector(4, 'resconv', share_across_levels=False,
                                       level_weights=[1., 0.5],
                                       anchor='state'))
    assert len(conn.flows.fields) == 2
    assert conn.field(0) is not conn.field(1)
    z = torch.randn(2, 4, 3, 3)
    out = conn([z, z], [z, z], DistillContext())
    assert not torch.equal(out.student[0], out.student[1])
    assert set(out.losses) == {'loss_flow_l0', 'loss_flow_l1'}
    with pytest.raises(ValueError, match='level_weights'):
        conn([z], None, DistillContext(training=False))


def test_theta_logit_flow_needs_the_replaced_output():
    conn = FMKTConnector(8, 'mlp', num_steps=2, head_mode=True,
                         num_classes=5, theta=True)
    z = torch.randn(2, 8, 3, 3)
    with pytest.raises(ValueError, match="replace='head.fc'"):
        conn([z], [torch.randn(2, 5)], DistillContext())
    with pytest.raises(ValueError, match="replace='head.fc'"):
        conn([z], None, DistillContext(training=False))
    own = torch.randn(2, 5)
    out = conn([z], None, DistillContext(training=False), replaced=own)
    assert out.student[0] is own
    with pytest.raises(ValueError, match='num_classes'):
        conn([z], [torch.randn(2, 5)], DistillContext(),
             replaced=torch.randn(2, 7))


def test_per_pixel_logit_flow_on_deeplabv3(saved_teacher):
    """Segmentation logit flow [ext]: per-pixel head, per-pixel CE with
    ignored pixels, mean logits replace decode_head.conv_seg."""
    from conftest import seg_batch, tiny_deeplabv3
    student, teacher = tiny_deeplabv3(8), tiny_deeplabv3(16)
    ckpt, _ = saved_teacher(teacher)
    connector = dict(type='FMKTConnector', channels=16, meta_encoder='conv',
                     num_steps=2, head_mode=True, head_pool=False,
                     num_classes=11, distance=dict(type='DISTLoss'))
    point = dict(student='decode_head.bottleneck',
                 teacher='decode_head.conv_seg',
                 replace='decode_head.conv_seg', connector=connector)
    torch.manual_seed(0)
    model = Distiller(student=student, teacher=teacher,
                             teacher_ckpt=ckpt,
                             distill_points=dict(flow=point))
    model.train()
    inputs, samples = seg_batch(2, 64)
    for sample in samples:
        sample.gt_sem_seg.data[:, :8] = 255
    losses = model(inputs, samples, mode='loss')
    conn = model.connectors['flow']
    assert torch.isfinite(losses['distill.flow.loss_ce'])
    model.parse_losses(losses)[0].backward()
    assert conn.logit_head.fc.weight.grad.abs().sum() > 0
    assert model.student.backbone.stem[0].weight.grad.abs().sum() > 0

    # the per-pixel CE leaves out label 255 and resizes to the label map
    logits = torch.randn(2, 11, 8, 8)
    ctx = DistillContext(samples)
    labels = ctx.gt_sem_seg()
    up = nn.functional.interpolate(logits, size=(64, 64), mode='bilinear',
                                   align_corners=False)
    torch.testing.assert_close(
        conn.logit_head.label_loss(logits, ctx),
        nn.functional.cross_entropy(up, labels, ignore_index=255))

    # class_weight: sum_p w[y_p] CE_p / sum_p w[y_p] over labelled pixels
    weights = [0.1] + [1.0] * 10
    head = FlowLogitHead(16, 11, pool=False, class_weight=weights)
    per_pixel = -up.log_softmax(1).gather(
        1, labels.clamp(max=10).unsqueeze(1)).squeeze(1)
    w = torch.tensor(weights)[labels.clamp(max=10)] * (labels != 255)
    torch.testing.assert_close(head.label_loss(logits, ctx),
                               (w * per_pixel).sum() / w.sum())
    with pytest.raises(ValueError, match='class_weight needs 11'):
        FlowLogitHead(16, 11, pool=False, class_weight=[1.0] * 10)
    with pytest.raises(ValueError, match='non-negative'):
        FlowLogitHead(16, 11, pool=False, class_weight=[-1.0] * 11)

    model.eval()
    with torch.no_grad():
        got = model(inputs, mode='tensor')  # the decode head's logits
        feat = model.student.decode_head._forward_feature(
            model.student.extract_feat(inputs))
        want = conn([feat], None, DistillContext(training=False)).student[0]
    assert got.shape == (2, 11, 8, 8)
    torch.testing.assert_close(got, want)
