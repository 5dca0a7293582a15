"""FM-KT: the teacher kept out of the flow, and pair decoupling."""
import pytest
import torch
from utils import perturb_gains

from mmkdflow.models.core import DistillContext
from mmkdflow.models.fmkt import (FMKTFeatureConnector, FMKTLogitConnector,
                                  decoupling_permutation)
from mmkdflow.models.losses import BaseDistillLoss


def test_teacher_never_reaches_meta_encoder_input():
    torch.manual_seed(0)
    conn = perturb_gains(FMKTFeatureConnector(8, meta_encoder='convnext',
                                              num_steps=3, dirac_ratio=0.5))
    seen = []
    conn.field(0).meta_encoder.register_forward_pre_hook(
        lambda mod, args: seen.append(args[0]))
    z = torch.randn(4, 8, 6, 6)
    teacher = torch.randn(4, 8, 6, 6, requires_grad=True)
    ctx = DistillContext()
    loss_a = conn([z], [teacher], ctx).losses['loss_flow']
    inputs_a, seen[:] = list(seen), []
    loss_b = conn([z], [torch.randn(4, 8, 6, 6) * 5], ctx).losses['loss_flow']
    assert len(inputs_a) == len(seen) == 3
    for a, b in zip(inputs_a, seen):
        assert torch.equal(a, b)
    assert not torch.isclose(loss_a, loss_b)
    grads = torch.autograd.grad(sum(i.sum() for i in inputs_a), teacher,
                                allow_unused=True)
    assert grads[0] is None or not grads[0].any()


@pytest.mark.parametrize('ratio,batch', [(1.0, 8), (0.5, 8), (0.25, 8),
                                         (0.0, 8), (0.7, 10), (0.9, 8)])
def test_decoupling_permutation_moves_exactly_m(ratio, batch):
    perm = decoupling_permutation(batch, ratio)
    m = round((1 - ratio) * batch)
    assert sorted(perm.tolist()) == list(range(batch))
    assert int((perm != torch.arange(batch)).sum()) == (m if m >= 2 else 0)


class Recorder(BaseDistillLoss):
    """A distance that records the targets it is given."""

    def __init__(self):
        super().__init__()
        self.targets = []

    def compute_loss(self, student, teacher, ctx):
        self.targets.append(teacher)
        return (student - teacher).pow(2)


def test_pair_decoupling_never_touches_teacher():
    torch.manual_seed(0)
    conn = FMKTFeatureConnector(4, meta_encoder='conv', num_steps=2,
                                dirac_ratio=0.5)
    conn.distance = Recorder()
    teacher = [torch.randn(8, 4, 3, 3), torch.randn(8, 4, 2, 2)]
    clones, ptrs = [t.clone() for t in teacher], [
        t.data_ptr() for t in teacher]
    conn([torch.randn(8, 4, 3, 3), torch.randn(8, 4, 2, 2)], teacher,
         DistillContext())
    for t, c, p in zip(teacher, clones, ptrs):
        assert torch.equal(t, c) and t.data_ptr() == p
    moved = []
    for level, target in zip([0, 0, 1, 1], conn.distance.targets):
        rows = [int(torch.nonzero((teacher[level] == r).flatten(1).all(1))[0])
                for r in target]
        assert sorted(rows) == list(range(8))
        moved.append(rows)
    assert moved[0] == moved[1] == moved[2] == moved[3]  # one permutation
    assert sum(r != i for i, r in enumerate(moved[0])) == 4


def released_scatter(x, m):
    """The released code's decoupling of ``x``, written as it does it (on a
    copy): ``perm = torch.randperm(m)``, then row ``perm[i]`` gets row
    ``i``."""
    perm = torch.randperm(m)
    expected = x.clone()
    expected[:m][perm] = expected[:m].clone()
    return expected, perm


def is_involution(perm):
    return torch.equal(perm[perm], torch.arange(len(perm)))


def run_released_setting(seed=3, batch=12):
    """The released classification setting (logit flow, dirac_ratio 0.5)
    on ``batch`` samples, seeded with ``seed`` before the step."""
    from mmpretrain.structures import DataSample
    conn = FMKTLogitConnector(8, meta_encoder='mlp', num_steps=2,
                              num_classes=5, dirac_ratio=0.5,
                              decoupling='released')
    conn.distance = Recorder()
    z, y_t = torch.randn(batch, 8, 3, 3), torch.randn(batch, 5)
    kept = y_t.clone()
    ctx = DistillContext([DataSample().set_gt_label(i % 5)
                          for i in range(batch)])
    torch.manual_seed(seed)
    conn([z], [y_t], ctx)
    return conn, y_t, kept


def test_released_pair_decoupling_at_the_released_setting():
    """``decoupling='released'`` at the released classification setting
    (logit flow, dirac_ratio 0.5, B = 12): the first int((1 - 0.5) B) = 6
    rows of the teacher logits scattered by one randperm as the released
    code does (row perm[i] gets row i), the rest in place, on a copy (the
    released code writes the same rows into the teacher itself)."""
    conn, y_t, kept = run_released_setting(seed=3, batch=12)
    m = int((1 - 0.5) * 12)
    torch.manual_seed(3)
    expected, perm = released_scatter(y_t, m)
    assert m == 6 and perm.tolist() == [4, 0, 3, 2, 1, 5]
    assert not is_involution(perm)  # scatter and gather differ here
    assert torch.equal(y_t, kept)  # the teacher is untouched
    assert len(conn.distance.targets) == 2  # one target for the N steps
    assert torch.equal(conn.distance.targets[0], expected)
    assert torch.equal(conn.distance.targets[1], expected)
    assert not torch.equal(expected, y_t)
    assert torch.equal(expected[m:], y_t[m:])


def test_released_pair_decoupling_is_not_the_gather_form():
    """The gather form (row i gets row perm[i]) of the same draw differs
    from the result for the seed above, so the test above tells the two
    apart."""
    conn, y_t, _ = run_released_setting(seed=3, batch=12)
    m = int((1 - 0.5) * 12)
    torch.manual_seed(3)
    perm = torch.randperm(m)
    gathered = y_t.clone()
    gathered[:m] = gathered[:m][perm]
    assert not torch.equal(conn.distance.targets[0], gathered)
    torch.manual_seed(3)
    scattered, _ = released_scatter(y_t, m)
    assert not torch.equal(scattered, gathered)
    assert torch.equal(scattered[:m], y_t[:m].index_select(
        0, torch.argsort(perm)))


def test_released_pair_decoupling_draws_per_level_with_a_flow():
    """FPN levels: one randperm per level that has a flow, in level order
    (none for a level of weight 0), each scattered as the released code
    does; with B = 3 and dirac_ratio 0.5 the first int(1.5) = 1 row cannot
    move."""
    conn = FMKTFeatureConnector(4, 'conv', num_steps=1, dirac_ratio=0.25,
                                decoupling='released',
                                level_weights=[1., 0., 1.])
    conn.distance = Recorder()
    student = [torch.randn(8, 4, 2, 2) for _ in range(3)]
    teacher = [torch.randn(8, 4, 2, 2) for _ in range(3)]
    torch.manual_seed(5)
    conn(student, teacher, DistillContext())
    torch.manual_seed(5)
    want, perms = [], []
    for level in (0, 2):
        expected, perm = released_scatter(teacher[level],
                                          int((1 - 0.25) * 8))
        want.append(expected)
        perms.append(perm)
    assert not any(is_involution(p) for p in perms)
    for got, expected in zip(conn.distance.targets, want):
        assert torch.equal(got, expected)
    small = FMKTFeatureConnector(4, 'conv', num_steps=1, dirac_ratio=0.5,
                                 decoupling='released')
    small.distance = Recorder()
    t3 = torch.randn(3, 4, 2, 2)
    small([torch.randn(3, 4, 2, 2)], [t3], DistillContext())
    assert torch.equal(small.distance.targets[0], t3)
    with pytest.raises(ValueError, match="'cycle', 'released'"):
        FMKTFeatureConnector(4, 'conv', dirac_ratio=0.5, decoupling='shuffle')
