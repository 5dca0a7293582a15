"""FM-KT: meta-encoders (registry, sizes, ConvNeXt) and time embeddings."""
import pytest
import torch
import torch.nn as nn
from utils import F64, perturb_gains

from mmkdflow.models.core import DistillContext
from mmkdflow.models.fmkt import (META_ENCODERS, FMKTFeatureConnector,
                                  TimeEmbedding, build_meta_encoder,
                                  euler_sample)


def test_users_register_their_own_meta_encoder(registered_for_test):
    from mmkdflow.registry import MODELS

    class ScaledConvEncoder(nn.Conv2d):
        def __init__(self, channels, scale=1.):
            super().__init__(channels, channels, 1)
            self.scale = scale

        def forward(self, x):
            return self.scale * super().forward(x)

    registered_for_test(MODELS, ScaledConvEncoder)
    conn = FMKTFeatureConnector(4, dict(type='ScaledConvEncoder', scale=2.),
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
    conn = FMKTFeatureConnector(8, meta_encoder='convnext', num_steps=2)
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
    conn = FMKTFeatureConnector(8, 'convnext', num_steps=3,
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
