"""The textbook two-stage DDIM step (eta = 0), written out for the tests
that check the connector's fused chain against it; the package only runs
the fused multiply-add of ``DDIMSchedule.ddim_coefficients``."""
import torch


def alpha_bar(schedule, t, like):
    """``alpha_bar_t`` of ``schedule`` as float32, broadcastable to
    ``like``; a negative ``t`` (after the last step) gives 1."""
    t = torch.as_tensor(t).long()
    value = torch.where(t >= 0, schedule.alpha_bar[t.clamp(min=0)],
                        torch.ones((), dtype=torch.float32))
    return value if value.dim() == 0 else \
        value.reshape((-1, ) + (1, ) * (like.dim() - 1))


def predict_x0(schedule, eps_pred, t, x_t):
    """``x0_pred = (x_t - sqrt(1 - ab_t) eps_pred) / sqrt(ab_t)``."""
    ab = alpha_bar(schedule, t, x_t)
    return (x_t.float() - (1 - ab).sqrt() * eps_pred.float()) / ab.sqrt()


def ddim_step(schedule, eps_pred, t, t_prev, x_t):
    """One deterministic DDIM step from ``t`` to ``t_prev`` (negative:
    the last step, which returns ``x0_pred``), in ``x_t``'s dtype."""
    x0_pred = predict_x0(schedule, eps_pred, t, x_t)
    ab_prev = alpha_bar(schedule, t_prev, x_t)
    out = ab_prev.sqrt() * x0_pred + (1 - ab_prev).sqrt() * eps_pred.float()
    return out.to(x_t.dtype)


def ddim_chain(schedule, predict, x, timesteps):
    """The chain over ``timesteps`` (largest first) with
    ``predict(x, t) -> eps``, step by step."""
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        x = ddim_step(schedule, predict(x, t), t, t_prev, x)
    return x
