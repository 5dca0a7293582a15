"""DiffKD: denoiser, adapter and autoencoder networks, the fused DDIM chain."""
import pytest
import torch
import torch.nn as nn
from utils import connector, n_params
from utils.ddim_reference import ddim_chain, ddim_step

from mmkdflow.models.diffkd import (DiffKDConnector, DiffusionBottleneck,
                                    FeatureNoiseAdapter, FeatureNoisePredictor,
                                    LinearAutoencoder, VectorNoiseAdapter,
                                    VectorNoisePredictor)


class Oracle(nn.Module):
    """A perfect denoiser: always returns the true noise."""

    def __init__(self, eps):
        super().__init__()
        self.eps = eps
        self.time_embedding = nn.Embedding(1, 1)  # gives the net's dtype

    def forward(self, x, t):
        return self.eps


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
