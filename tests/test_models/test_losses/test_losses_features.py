"""PKD and MSE against re-computations; PKD's prepared target and resize."""
import re

import pytest
import torch
import torch.nn.functional as F
from utils import B, FEAT, K, close, rand

from mmkdflow.models.losses import MSELoss, PKDLoss


def ref_pkd(s, t):
    total = 0.0
    for c in range(s.shape[1]):
        xs, xt = s[:, c].flatten().double(), t[:, c].flatten().double()
        ns = (xs - xs.mean()) / (xs.std(unbiased=False) + 1e-6)
        nt = (xt - xt.mean()) / (xt.std(unbiased=False) + 1e-6)
        total += float(((ns - nt)**2).sum())
    return total / s.numel() / 2


def test_pkd_matches_reference():
    s, t = rand(*FEAT, seed=19), rand(*FEAT, seed=20) * 5 + 2
    close(PKDLoss(loss_weight=2.0)(s, t), 2.0 * ref_pkd(s, t))


def test_pkd_ignores_channel_scale_and_offset():
    s, t = rand(*FEAT, seed=21), rand(*FEAT, seed=22)
    scale = torch.tensor([0.5, 3.0, 10.0])[None, :, None, None]
    shifted = s * scale + torch.tensor([1.0, -4.0, 7.0])[None, :, None, None]
    close(PKDLoss()(shifted, t), PKDLoss()(s, t), rtol=1e-4, atol=1e-5)


def test_pkd_reductions_and_2d_inputs():
    s, t = rand(*FEAT, seed=23), rand(*FEAT, seed=24)
    mean = PKDLoss()(s, t)
    close(PKDLoss(reduction='sum')(s, t), mean * s.numel())
    none = PKDLoss(reduction='none')(s, t)
    assert none.shape == FEAT
    close(none.mean(), mean)
    s2, t2 = rand(B, K, seed=25), rand(B, K, seed=26)
    close(PKDLoss()(s2, t2), ref_pkd(s2[..., None, None], t2[..., None,
                                                             None]))


def test_pkd_prepared_target_is_the_normalised_teacher():
    teacher = torch.randn(3, 4, 2, 2) * 5 + 2
    target = PKDLoss().prepare_target(teacher)
    torch.testing.assert_close(target.mean((0, 2, 3)), torch.zeros(4),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(target.std((0, 2, 3), correction=0),
                               torch.ones(4), atol=1e-5, rtol=0)
    assert PKDLoss().prepare_target(torch.randn(3, 4)).shape == (3, 4, 1, 1)


def test_pkd_resize_student():
    s, t = rand(2, 3, 2, 3, seed=27), rand(*FEAT, seed=28)
    resized = F.interpolate(s, size=FEAT[2:], mode='bilinear',
                            align_corners=False)
    close(PKDLoss(resize_stu=True)(s, t), ref_pkd(resized, t))
    with pytest.raises(ValueError,
                       match=re.escape('(2, 3, 2, 3)') + '.*' +
                       re.escape('(2, 3, 4, 5)')):
        PKDLoss()(s, t)


def test_mse_reductions_and_weight():
    s, t = rand(*FEAT, seed=29), rand(*FEAT, seed=30)
    sq = [(float(a) - float(b))**2 for a, b in zip(s.flatten(), t.flatten())]
    close(MSELoss(loss_weight=4.0)(s, t), 4.0 * sum(sq) / len(sq))
    close(MSELoss(reduction='sum')(s, t), sum(sq))
    none = MSELoss(reduction='none')(s, t)
    assert none.shape == FEAT
    close(none.flatten(), torch.tensor(sq))
