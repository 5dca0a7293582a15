"""FM-KT's released-code choices, each behind one switch."""
import pytest
import torch
import torch.nn.functional as F
from utils import rms_input

from mmkdflow.models.fmkt import FMKTFeatureConnector, build_meta_encoder
from mmkdflow.models.losses import DISTLoss, PKDLoss


def test_released_init_velocity_is_layer_norm_of_input():
    """``init='released'``: no gain, so the convnext velocity at init is
    about LN_C(x + emb(t)) per pixel (the layer scale is 1e-6 and the one
    LayerNorm per block has unit affine): unit RMS whatever the input."""
    torch.manual_seed(0)
    conn = FMKTFeatureConnector(16, 'convnext', num_steps=1,
                                init='released')
    field = conn.field(0)
    assert not hasattr(field, 'velocity_gain')
    for rms in (0.1, 10.):
        x = rms_input(rms)
        emb = field.time_embed(1.0, 1)
        want = F.layer_norm((x + emb).permute(0, 2, 3, 1), (16, ),
                            eps=1e-5).permute(0, 3, 1, 2)
        torch.testing.assert_close(field(x, 1.0), want, rtol=0, atol=1e-3)
        v = field(x, 1.0)
        torch.testing.assert_close(v.pow(2).mean(1).sqrt(),
                                   torch.ones(2, 7, 7), rtol=0, atol=1e-2)
    with pytest.raises(ValueError, match='identity'):
        FMKTFeatureConnector(16, init='zero')


def test_pkd_released_normalisation():
    """``unbiased=True, eps=1e-8``: the released detection PKD."""
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 4, 3, 3, generator=gen), \
        torch.randn(2, 4, 3, 3, generator=gen)

    def norm(x, eps, correction):
        mean = x.mean((0, 2, 3), keepdim=True)
        var = ((x - mean)**2).sum((0, 2, 3), keepdim=True) / (
            x[:, :1].numel() - correction)
        return (x - mean) / (var.sqrt() + eps)

    released = PKDLoss(eps=1e-8, unbiased=True)
    torch.testing.assert_close(
        released(s, t), ((norm(s, 1e-8, 1) - norm(t, 1e-8, 1))**2).mean() / 2)
    ours = PKDLoss()
    torch.testing.assert_close(
        ours(s, t), ((norm(s, 1e-6, 0) - norm(t, 1e-6, 0))**2).mean() / 2)
    assert not torch.isclose(ours(s, t), released(s, t), rtol=1e-5, atol=0)


def test_dist_released_eps():
    """``eps=1e-5``: FM-KT's released DIST; matters at near-uniform
    predictions."""
    gen = torch.Generator().manual_seed(0)
    s, t = 1e-3 * torch.randn(8, 10, generator=gen), \
        1e-3 * torch.randn(8, 10, generator=gen)

    def corr(a, b, eps):
        a = a - a.mean(1, keepdim=True)
        b = b - b.mean(1, keepdim=True)
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)

    def dist(eps):
        p_s, p_t = s.softmax(1), t.softmax(1)
        return 2 * (1 - corr(p_s, p_t, eps).mean()) + \
            2 * (1 - corr(p_s.t(), p_t.t(), eps).mean())

    released = DISTLoss(beta=2., gamma=2., eps=1e-5)
    torch.testing.assert_close(released(s, t), dist(1e-5))
    ours = DISTLoss(beta=2., gamma=2.)
    torch.testing.assert_close(ours(s, t), dist(1e-8))
    assert abs(ours(s, t) - released(s, t)) > 1e-3 * ours(s, t)


def test_mlp_without_biases_is_the_released_block():
    torch.manual_seed(0)
    enc = build_meta_encoder(dict(type='mlp', bias=False), 8)
    block = enc[0]
    assert block.fc1.bias is None and block.fc2.bias is None
    x = torch.randn(2, 8, 3, 3)
    h = F.conv2d(F.relu(F.conv2d(x, block.fc1.weight)), block.fc2.weight)
    want = F.layer_norm((x + h).permute(0, 2, 3, 1), (8, ), block.norm.weight,
                        block.norm.bias).permute(0, 3, 1, 2)
    torch.testing.assert_close(enc(x), want)
