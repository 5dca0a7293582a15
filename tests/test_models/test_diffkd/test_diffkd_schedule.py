"""DiffKD: the DDIM schedule, its fp32 table and its fused coefficients."""
import math

import pytest
import torch
from utils import connector
from utils.ddim_reference import ddim_step

from mmkdflow.models.diffkd import DDIMSchedule


def ab_ref(t: int) -> float:
    """alpha_bar_t = prod_{i<=t} (1 - beta_i), betas linear 1e-4..0.02."""
    return math.prod(1 - (1e-4 + i * (0.02 - 1e-4) / 999)
                     for i in range(t + 1))


def test_alpha_bar_closed_form_and_fp32_buffer():
    sched = DDIMSchedule()
    assert sched.alpha_bar.dtype == torch.float32
    assert sched.alpha_bar.shape == (1000, )
    assert 'alpha_bar' in sched.state_dict()
    for t in (0, 1, 399, 400, 999):
        assert sched.alpha_bar[t].item() == pytest.approx(ab_ref(t),
                                                          rel=1e-6)


def test_forward_noising_closed_form():
    sched = DDIMSchedule()
    torch.manual_seed(0)
    x0, eps = torch.randn(2, 3, 3, 4, 4).unbind(0)
    t = torch.tensor([0, 400, 999])
    noisy = sched.add_noise(x0, eps, t)
    for b, tb in enumerate(t.tolist()):
        a = ab_ref(tb)
        ref = math.sqrt(a) * x0[b] + math.sqrt(1 - a) * eps[b]
        torch.testing.assert_close(noisy[b], ref)


def test_inference_timesteps_rule():
    sched = DDIMSchedule()
    assert sched.inference_timesteps() == [400, 300, 200, 100, 0]
    assert sched.inference_timesteps(5, 500) == [500, 375, 250, 125, 0]
    assert sched.inference_timesteps(1, 400) == [400]
    assert sched.inference_timesteps(10, 900) == list(range(900, -1, -100))
    for bad in ((0, 400), (5, 1000), (5, 3)):
        with pytest.raises(ValueError):
            sched.inference_timesteps(*bad)


def test_matches_diffusers_ddim_scheduler():
    """diffusers' DDIM with 10 steps over 1000 ("leading" spacing, offset 0)
    visits 900, 800, ..., 0 and steps from t to t - 100: our default chain
    400 -> 300 -> ... -> 0 is its second half. ``set_alpha_to_one=True``
    makes its last step (t = 0, prev = -100) use alpha_bar_prev = 1, i.e.
    return x0_pred, as ours does; eta = 0 and no clipping make both
    deterministic. Our alpha_bar is a float64 cumprod rounded once to fp32,
    diffusers accumulates in fp32 (<= 3e-7 apart); with diffusers' table
    loaded into our buffer the textbook step is bit-identical, and the
    fused chain the connector runs agrees to float rounding."""
    from diffusers import DDIMScheduler
    ref = DDIMScheduler(
        num_train_timesteps=1000, beta_schedule='linear', beta_start=1e-4,
        beta_end=0.02, clip_sample=False, set_alpha_to_one=True,
        prediction_type='epsilon', timestep_spacing='leading', steps_offset=0)
    ref.set_timesteps(10)
    sched = DDIMSchedule()
    steps = sched.inference_timesteps()
    assert ref.timesteps[5:].tolist() == steps
    torch.testing.assert_close(sched.alpha_bar, ref.alphas_cumprod,
                               rtol=0, atol=1e-6)
    same_table = DDIMSchedule()
    same_table.load_state_dict({'alpha_bar': ref.alphas_cumprod.clone()})
    torch.manual_seed(0)
    x = exact = fused = torch.randn(2, 4, 5, 5)
    coefs = same_table.ddim_coefficients(steps)
    for i, (t, (c_x, c_eps)) in enumerate(zip(steps, coefs)):
        t_prev = steps[i + 1] if i + 1 < len(steps) else -1
        eps_pred = torch.randn_like(x)
        x = ref.step(eps_pred, t, x, eta=0.0).prev_sample
        exact = ddim_step(same_table, eps_pred, t, t_prev, exact)
        fused = torch.add(fused * c_x, eps_pred, alpha=c_eps)
        assert torch.equal(exact, x)  # bit-identical
        torch.testing.assert_close(fused, x, rtol=1e-5, atol=1e-5)


def test_fp32_buffer_survives_casts_and_state_dict():
    conn = connector()
    original = conn.schedule.alpha_bar.clone()
    conn.half()
    assert conn.branches[0]['proj'].weight.dtype == torch.float16
    assert conn.schedule.alpha_bar.dtype == torch.float32
    assert torch.equal(conn.schedule.alpha_bar, original)
    conn.to(torch.bfloat16)
    assert torch.equal(conn.schedule.alpha_bar, original)
    state = conn.state_dict()
    assert state['schedule.alpha_bar'].dtype == torch.float32
    fresh = DDIMSchedule()
    fresh.alpha_bar.zero_()
    fresh.load_state_dict({'alpha_bar': state['schedule.alpha_bar']})
    assert torch.equal(fresh.alpha_bar, original)
    assert fresh.alpha_bar[0].item() < 1.0  # fp16 would round it to 1


def test_ddim_coefficients_closed_form():
    """c_x = sqrt(ab_prev / ab_t), c_eps = sqrt(1 - ab_prev) - sqrt(ab_prev
    (1 - ab_t) / ab_t) in float64 on the float32 table, ab_prev = 1 after
    the last step (which then returns x0_pred)."""
    sched = DDIMSchedule()
    steps = sched.inference_timesteps()
    coefs = sched.ddim_coefficients(steps)
    assert len(coefs) == len(steps)
    for i, (t, (c_x, c_eps)) in enumerate(zip(steps, coefs)):
        t_prev = steps[i + 1] if i + 1 < len(steps) else -1
        a = sched.alpha_bar[t].double().item()
        a_prev = sched.alpha_bar[t_prev].double().item() if t_prev >= 0 \
            else 1.0
        assert c_x == pytest.approx(math.sqrt(a_prev / a), rel=1e-12)
        assert c_eps == pytest.approx(
            math.sqrt(1 - a_prev) - math.sqrt(a_prev * (1 - a) / a),
            rel=1e-12)
    assert coefs[-1][0] == pytest.approx(1 / math.sqrt(ab_ref(0)))
    with pytest.raises(ValueError, match='timesteps'):
        sched.ddim_coefficients([1000])


def test_ddim_coefficients_follow_a_loaded_table():
    sched = DDIMSchedule()
    before = sched.ddim_coefficients([400, 0])
    assert sched.ddim_coefficients([400, 0]) is before  # cached
    table = sched.alpha_bar.clone()
    table[400] = 0.5
    sched.load_state_dict({'alpha_bar': table})
    after = sched.ddim_coefficients([400, 0])
    assert after[0][0] == pytest.approx(math.sqrt(ab_ref(0) / 0.5),
                                        rel=1e-6)
