"""FM-KT sampling: schedules, Euler steps, step counts, per-level flows."""
import pytest
import torch
import torch.nn as nn
from utils import F64, perturb_gains

from mmkdflow.models.core import DistillContext
from mmkdflow.models.fmkt import (FMKTFeatureConnector, build_schedule,
                                  euler_sample)


class ExactVelocity(nn.Module):
    """A meta-encoder stub returning a fixed velocity whatever its input."""

    def __init__(self, v=None):
        super().__init__()
        self.v = v

    def forward(self, x):
        return self.v


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
    conn = FMKTFeatureConnector(4, meta_encoder=ExactVelocity(z - teacher),
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
    conn = perturb_gains(
        FMKTFeatureConnector(8, meta_encoder='conv', num_steps=6))
    z = torch.randn(2, 8, 5, 5)
    traj = conn.flow(z, num_steps=6)
    torch.testing.assert_close(traj.mean, traj.end, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(traj.predictions[0], traj.predictions[-1])
    out = conn([z], None, DistillContext(training=False)).student[0]
    torch.testing.assert_close(out, traj.mean)


def test_random_steps_in_training_fixed_at_test():
    torch.manual_seed(0)
    conn = FMKTFeatureConnector(4, 'conv', num_steps=4, num_steps_test=3,
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
    conn = perturb_gains(FMKTFeatureConnector(
        4, 'resconv', share_across_levels=False, level_weights=[1., 0.5],
        anchor='state'))
    assert len(conn.flows.fields) == 2
    assert conn.field(0) is not conn.field(1)
    z = torch.randn(2, 4, 3, 3)
    out = conn([z, z], [z, z], DistillContext())
    assert not torch.equal(out.student[0], out.student[1])
    assert set(out.losses) == {'loss_flow_l0', 'loss_flow_l1'}
    with pytest.raises(ValueError, match='level_weights'):
        conn([z], None, DistillContext(training=False))
