"""The Euler sampler's memory option: per-step activation checkpointing
gives the plain path's outputs and gradients, and keeps less alive."""
import pytest
import torch

from mmkdflow_tools.benchmark import peak_memory
from mmkdflow.compat import torch_at_least
from mmkdflow.models.fmkt import (TimeEmbedding, VelocityField,
                                  build_meta_encoder, checkpointed,
                                  euler_sample)
from mmkdflow.models.utils import compile_options
from mmkdflow.models.utils.compile import COMPILE_MIN_TORCH

C = 8


def field(seed: int = 0, **kwargs) -> VelocityField:
    torch.manual_seed(seed)
    return VelocityField(build_meta_encoder('convnext', C),
                         TimeEmbedding(C, 'linear'), **kwargs)


def run(vf: VelocityField, z: torch.Tensor, n: int, **kwargs):
    """Trajectory, and gradients of a loss on every prediction w.r.t. z
    and the field's parameters."""
    z = z.detach().requires_grad_()
    traj = euler_sample(vf.trajectory(n, z.dim()), z, n, **kwargs)
    loss = sum((p * (i + 1)).square().mean()
               for i, p in enumerate(traj.predictions))
    loss = loss + traj.end.sin().mean()
    grads = torch.autograd.grad(loss, [z] + list(vf.parameters()))
    return traj, loss, grads


@pytest.mark.parametrize('where', ['field', 'sampler'])
def test_checkpointed_steps_match_the_plain_path(where):
    z = torch.randn(2, C, 5, 6)
    plain = field()
    ckpt = field(checkpoint=where == 'field')
    ckpt.load_state_dict(plain.state_dict())
    with torch.no_grad():  # a non-trivial velocity (E starts near 0)
        for p in list(plain.parameters()) + list(ckpt.parameters()):
            p.add_(0.05)
    ref, ref_loss, ref_grads = run(plain, z, 3)
    out, loss, grads = run(ckpt, z, 3, checkpoint=where == 'sampler')
    torch.testing.assert_close(loss, ref_loss)
    for a, b in zip(out.predictions + [out.mean, out.end],
                    ref.predictions + [ref.mean, ref.end]):
        torch.testing.assert_close(a, b)
    for name, a, b in zip(['z'] + [n for n, _ in plain.named_parameters()],
                          grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_checkpointing_is_skipped_without_grad_and_keeps_rng():
    calls = []

    def velocity(x, t):
        calls.append(torch.is_grad_enabled())
        return torch.nn.functional.dropout(x, 0.5, training=True)

    x = torch.randn(4, 3, requires_grad=True)
    torch.manual_seed(0)
    plain = velocity(x, 1.0)
    torch.manual_seed(0)
    out = checkpointed(velocity)(x, 1.0)
    out.sum().backward()  # recomputes with the same dropout mask
    torch.testing.assert_close(out, plain)
    torch.testing.assert_close(x.grad, (plain != 0).float() * 2)
    assert calls == [True, True, True]
    with torch.no_grad():
        checkpointed(velocity)(x, 1.0)
    assert calls[-1] is False


def test_checkpointing_keeps_less_alive_as_n_grows():
    """Peak memory (profiler allocation events) of forward+backward: with
    checkpointing, N=8 holds far less than the plain N=8."""
    z = torch.randn(2, C, 16, 16, requires_grad=True)

    def step(vf, n):
        def go():
            traj = euler_sample(vf.trajectory(n, 4), z, n)
            sum(p.square().mean() for p in traj.predictions).backward()
        return go

    plain, ckpt = field(), field(checkpoint=True)
    peaks = {(name, n): peak_memory(step(vf, n), torch.device('cpu'))[0]
             for name, vf in (('plain', plain), ('ckpt', ckpt))
             for n in (1, 8)}
    # the CPU profiler reports allocation events on this stack: a missing
    # peak is a broken measurement, not a reason to pass
    assert None not in peaks.values(), peaks
    assert peaks['ckpt', 8] < 0.6 * peaks['plain', 8]
    assert peaks['plain', 8] > peaks['plain', 1]


def test_options_are_validated_at_build_time():
    assert compile_options(False) is None and compile_options(None) is None
    if torch_at_least(COMPILE_MIN_TORCH):
        assert compile_options(True) == {'dynamic': False}
        assert compile_options({'mode': 'max-autotune'}) == {
            'dynamic': False, 'mode': 'max-autotune'}
    else:  # the floor: refused when built, naming the torch it needs
        with pytest.raises(RuntimeError, match='compile=True needs torch'):
            field(compile=True)
    with pytest.raises(TypeError, match='compile must be a bool or a dict'):
        field(compile='yes')


def test_recompile_limit_is_raised_only_inside_compiled_calls(monkeypatch):
    """``compiled`` raises TorchDynamo's recompilation limit for its own
    calls and restores it after: the process-wide setting stays torch's."""
    from mmkdflow.models.utils import compile as compile_utils
    config = torch._dynamo.config
    name = 'recompile_limit' if hasattr(config, 'recompile_limit') \
        else 'cache_size_limit'
    seen = []

    def fake_compile(fn, **options):
        return lambda *args: seen.append(getattr(config, name)) or fn(*args)

    monkeypatch.setattr(torch, 'compile', fake_compile)
    monkeypatch.setattr(compile_utils, '_COMPILED', {})
    # (the config module's own patch: monkeypatch's undo would delete the
    # setting from it)
    with config.patch(**{name: 8}):
        fn = compile_utils.compiled(torch.neg, {'dynamic': False})
        assert compile_utils.compiled(torch.neg, {'dynamic': False}) is fn
        assert torch.equal(fn(torch.ones(2)), -torch.ones(2))
        assert seen == [compile_utils.MIN_RECOMPILE_LIMIT]
        assert getattr(config, name) == 8
