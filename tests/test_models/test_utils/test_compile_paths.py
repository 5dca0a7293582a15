"""torch.compile options of the FM-KT velocity field and the DiffKD
denoiser: the plain path's outputs and gradients (float tolerance), and no
recompilation in later steps when N or the level changes.

Each compilation costs ~10 s on a 2-core CPU, so there are few of them:
two level shapes for FM-KT (shared by every N and by checkpointing), one
level for DiffKD (its denoiser in the DDIM chain and in the loss)."""
import copy

import pytest
import torch

from mmkdflow.compat import torch_at_least
from mmkdflow.models.diffkd import DiffKDConnector
from mmkdflow.models.fmkt import (GatedVelocityField, TimeEmbedding,
                                  build_meta_encoder, euler_sample)
from mmkdflow.models.core import DistillContext
from mmkdflow.models.utils.compile import COMPILE_MIN_TORCH

pytestmark = pytest.mark.skipif(
    not torch_at_least(COMPILE_MIN_TORCH),
    reason='compile=True needs torch >= 2.6: refused at build there '
    '(tests/test_version.py::test_compile_refused_below_its_torch_when_built)')

C = 8
LEVELS = [(2, C, 6, 10), (2, C, 3, 5)]


def no_recompilation():
    """Any recompilation inside raises (public torch.compiler API)."""
    return torch.compiler.set_stance('fail_on_recompile')


def flow_step(vf, feats, n):
    """One training step of a flow over the levels: loss and gradients."""
    loss = 0
    for z in feats:
        traj = euler_sample(vf.trajectory(n, 4), z, n)
        loss = loss + sum(p.square().mean() for p in traj.predictions)
    grads = torch.autograd.grad(loss, feats + list(vf.parameters()))
    return loss, grads


def test_compiled_velocity_field_matches_eager_and_never_recompiles():
    torch.manual_seed(0)
    eager = GatedVelocityField(build_meta_encoder('convnext', C),
                               TimeEmbedding(C, 'linear'), C)
    with torch.no_grad():
        eager.velocity_gain.fill_(0.5)  # a non-zero velocity
    fast = copy.deepcopy(eager)
    fast.compile, fast.checkpoint = True, True
    feats = [torch.randn(s, requires_grad=True) for s in LEVELS]
    # step 1 compiles each level shape once (N = 2)
    ref_loss, ref_grads = flow_step(eager, feats, 2)
    loss, grads = flow_step(fast, feats, 2)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with no_recompilation():
        # later steps: other N, levels in another order, plain (not
        # checkpointed) calls, and a deep copy (an EMA) with other weights
        for n in (1, 3):
            loss, _ = flow_step(fast, feats[::-1], n)
            ref, _ = flow_step(eager, feats[::-1], n)
            torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
        fast.checkpoint = False
        flow_step(fast, feats, 4)
        ema = copy.deepcopy(fast)
        with torch.no_grad():
            ema.velocity_gain.fill_(0.25)
            ref = copy.deepcopy(eager)
            ref.velocity_gain.fill_(0.25)
        torch.testing.assert_close(flow_step(ema, feats, 2)[0],
                                   flow_step(ref, feats, 2)[0],
                                   rtol=1e-5, atol=1e-6)
    assert set(fast.state_dict()) == set(eager.state_dict())


def test_compiled_diffkd_denoiser_matches_eager_with_training_bn():
    torch.manual_seed(0)
    eager = DiffKDConnector(4, C).train()
    fast = copy.deepcopy(eager)
    fast.compile = True
    f_s = torch.randn(2, 4, 6, 10, requires_grad=True)
    f_t = torch.randn(2, C, 6, 10)
    ctx = DistillContext()

    def step(conn, seed):
        torch.manual_seed(seed)
        out = conn([f_s], [f_t], ctx)
        total = sum(out.losses.values())
        grads = torch.autograd.grad(total, [f_s] + list(conn.parameters()))
        return out.losses, grads

    for seed in (1, 2):  # step 1 compiles; step 2 may not recompile
        with (no_recompilation() if seed == 2 else torch.enable_grad()):
            losses, grads = step(fast, seed)
        ref_losses, ref_grads = step(eager, seed)
        for key in ref_losses:
            torch.testing.assert_close(losses[key], ref_losses[key],
                                       rtol=1e-5, atol=1e-6, msg=key)
        for a, b in zip(grads, ref_grads):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for key, value in eager.state_dict().items():  # BN running stats too
        torch.testing.assert_close(fast.state_dict()[key], value,
                                   rtol=1e-5, atol=1e-6, msg=key)
