"""What every loss shares: gradients, shapes, reductions, weights, builds."""
import re

import pytest
import torch
from utils import B, FEAT, K, close, make_ctx, rand

from mmkdflow.models.losses import (AttentionMSELoss, BaseDistillLoss,
                                    ChannelWiseDivergence, DISTLoss, DKDLoss,
                                    KDLoss, MSELoss, PKDLoss,
                                    weight_reduce_loss)
from mmkdflow.registry import MODELS


@pytest.mark.parametrize('cls,kwargs,shape', [
    (PKDLoss, {}, (2, 4, 3, 5)), (MSELoss, {}, (2, 4, 3, 5)),
    (KDLoss, dict(temperature=2.), (4, 7))])
def test_forward_steps_is_the_sum_of_forwards(cls, kwargs, shape):
    """One target for N students (an FM-KT trajectory): the sum of the
    single losses, with the target prepared once."""
    torch.manual_seed(0)
    loss = cls(loss_weight=3., **kwargs)
    students = [torch.randn(shape, requires_grad=True) for _ in range(3)]
    teacher = torch.randn(shape)
    prepared = []
    original = loss.prepare_target
    loss.prepare_target = lambda t: prepared.append(1) or original(t)
    total = loss.forward_steps(students, teacher)
    assert len(prepared) == 1
    torch.testing.assert_close(total, sum(loss(s, teacher) for s in students))
    total.backward()
    assert all(s.grad is not None for s in students)
    with pytest.raises(ValueError, match='at least one student'):
        loss.forward_steps([], teacher)


ZERO_WHEN_EQUAL = [
    (KDLoss, dict(temperature=4.0), (B, K)),
    (DISTLoss, dict(), (B, K)),
    (PKDLoss, dict(), FEAT),
    (MSELoss, dict(), FEAT),
    (ChannelWiseDivergence, dict(), FEAT),
    (AttentionMSELoss, dict(alpha_at=1.0), FEAT),
]


@pytest.mark.parametrize('cls,kwargs,shape', ZERO_WHEN_EQUAL)
def test_identical_inputs_give_zero(cls, kwargs, shape):
    x = rand(*shape, seed=39)
    close(cls(**kwargs)(x, x.clone()), 0.0, atol=1e-6)
    assert float(cls(**kwargs)(x, rand(*shape, seed=40))) > 1e-3


ALL_LOSSES = ZERO_WHEN_EQUAL + [(DKDLoss, dict(), (B, K))]


@pytest.mark.parametrize('cls,kwargs,shape', ALL_LOSSES)
def test_gradient_reaches_student_only(cls, kwargs, shape):
    student = rand(*shape, seed=41).requires_grad_()
    teacher = rand(*shape, seed=42).requires_grad_()
    ctx = make_ctx(range(shape[0]))
    loss = cls(**kwargs)(student, teacher, ctx)
    assert loss.dim() == 0
    loss.backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


@pytest.mark.parametrize('cls,kwargs,shape', ALL_LOSSES)
def test_shape_mismatch_names_both_shapes(cls, kwargs, shape):
    bigger = (shape[0], shape[1] * 2) + tuple(shape[2:])
    with pytest.raises(ValueError) as err:
        cls(**kwargs)(rand(*shape), rand(*bigger), make_ctx(range(shape[0])))
    message = str(err.value)
    assert str(tuple(shape)) in message and str(bigger) in message
    assert 'connector' in message


def test_shape_mismatch_message_for_features():
    with pytest.raises(ValueError,
                       match=re.escape('student (2, 128, 8, 8) vs teacher '
                                       '(2, 256, 8, 8)') + '.*ConvAdapter'):
        MSELoss()(torch.zeros(2, 128, 8, 8), torch.zeros(2, 256, 8, 8))


@pytest.mark.parametrize('cls', [c for c, _, _ in ALL_LOSSES])
def test_invalid_reduction_names_allowed_values(cls):
    with pytest.raises(ValueError, match="reduction must be one of.*'mean'"):
        cls(reduction='average')


@pytest.mark.parametrize('cls,kwargs,shape', ALL_LOSSES)
def test_low_precision_inputs_computed_in_fp32(cls, kwargs, shape):
    s = rand(*shape, seed=43).bfloat16()
    t = rand(*shape, seed=44).bfloat16()
    ctx = make_ctx(range(shape[0]))
    expected = cls(**kwargs)(s.float(), t.float(), ctx)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        loss = cls(**kwargs)(s, t, ctx)
    assert loss.dtype == torch.float32
    close(loss, expected)


@pytest.mark.parametrize('cfg,attrs', [
    (dict(type='KDLoss', temperature=4.0), dict(temperature=4.0)),
    (dict(type='DKDLoss', beta=2.0, warmup=3), dict(beta=2.0, warmup=3)),
    (dict(type='DISTLoss', beta=2.0, gamma=2.0), dict(beta=2.0, gamma=2.0)),
    (dict(type='PKDLoss', resize_stu=True), dict(resize_stu=True)),
    (dict(type='MSELoss', loss_weight=5.0), dict(loss_weight=5.0)),
    (dict(type='ChannelWiseDivergence', tau=3.0), dict(tau=3.0)),
    (dict(type='AttentionMSELoss', temperature=0.8), dict(temperature=0.8)),
])
def test_build_by_name(cfg, attrs):
    loss = MODELS.build(cfg)
    assert isinstance(loss, BaseDistillLoss)
    assert type(loss).__name__ == cfg['type']
    for name, value in attrs.items():
        assert getattr(loss, name) == value


def test_weight_reduce_loss_is_mmdets():
    loss = torch.tensor([1., 2., 3., 4.])
    weight = torch.tensor([1., 0., 2., 1.])
    close(weight_reduce_loss(loss, weight, 'sum'), 11.)
    close(weight_reduce_loss(loss, weight, 'mean'), 11. / 4)
    close(weight_reduce_loss(loss, weight, 'mean', avg_factor=2.), 5.5)
    close(weight_reduce_loss(loss, weight, 'none'), loss * weight)
    close(weight_reduce_loss(loss), 2.5)
    with pytest.raises(ValueError, match='avg_factor'):
        weight_reduce_loss(loss, reduction='sum', avg_factor=2.)


@pytest.mark.parametrize('cls,kwargs,shape,item_shape', [
    (MSELoss, {}, FEAT, FEAT),
    (PKDLoss, {}, FEAT, FEAT),
    (KDLoss, dict(temperature=2.), (B, K), (B, )),
    (KDLoss, {}, (2, K, 3, 4), (2, 3, 4)),
    (DKDLoss, {}, (B, K), (B, )),
    (ChannelWiseDivergence, {}, FEAT, FEAT[:2]),
    (AttentionMSELoss, {}, FEAT, FEAT),
])
def test_weight_avg_factor_and_reduction_override(cls, kwargs, shape,
                                                  item_shape):
    """Every loss: forward(weight=w) reduces w * l (l = its 'none'
    output), avg_factor divides the sum, reduction_override replaces the
    configured reduction for one call; loss_weight applies on top."""
    s, t = rand(*shape, seed=45), rand(*shape, seed=46)
    ctx = make_ctx(torch.arange(shape[0]) % K)
    items = cls(reduction='none', **kwargs)(s, t, ctx)
    assert items.shape == item_shape
    w = rand(*item_shape, seed=47).abs()
    loss = cls(loss_weight=2., **kwargs)
    close(loss(s, t, ctx, weight=w), 2. * (items * w).mean())
    close(loss(s, t, ctx, weight=w, avg_factor=3.),
          2. * (items * w).sum() / 3.)
    close(loss(s, t, ctx, reduction_override='sum'), 2. * items.sum())
    close(loss(s, t, ctx, weight=w, reduction_override='none'),
          2. * items * w)
    with pytest.raises(ValueError, match='reduction must be one of'):
        loss(s, t, ctx, reduction_override='average')


def test_dist_weight_scales_its_scalar():
    s, t = rand(B, K, seed=48), rand(B, K, seed=49)
    loss = DISTLoss()
    close(loss(s, t, weight=torch.tensor(0.5)), 0.5 * loss(s, t))
    close(loss(s, t, avg_factor=4.), loss(s, t) / 4.)


def test_attention_imitation_refuses_a_none_override():
    s, t = rand(*FEAT, seed=50), rand(*FEAT, seed=51)
    with pytest.raises(ValueError, match='alpha_at'):
        AttentionMSELoss(alpha_at=0.5)(s, t, reduction_override='none')
