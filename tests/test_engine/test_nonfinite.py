"""A NaN/Inf loss or gradient stops the run, or skips the step, before it
reaches the weights: the non-finite guard optim wrappers, alone and
composed with bf16 autocast and with MMEngine's AmpOptimWrapper."""
import pytest
import torch
import torch.nn as nn
from utils import det_batch, det_distiller
from mmengine.model import BaseModel
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmkdflow.engine import (NonFiniteGuardAmpOptimWrapper,
                             NonFiniteGuardAutocastOptimWrapper,
                             NonFiniteGuardOptimWrapper, NonFiniteLossError,
                             guard_optim_wrapper)
from mmkdflow.engine.nonfinite_guard import (all_finite, describe_nonfinite,
                                             nonfinite_losses)
from mmkdflow.registry import OPTIM_WRAPPERS


def test_nonfinite_losses_names_only_the_bad_entries():
    losses = dict(
        loss_a=torch.tensor(1.0),
        loss_b=[torch.tensor(2.0), torch.tensor(float('inf'))],
        acc=torch.tensor(float('nan')),  # not a loss: ignored
        loss_c=torch.tensor([0.5, float('nan')]))
    assert nonfinite_losses(losses) == ['loss_b[1]', 'loss_c']
    assert nonfinite_losses(dict(loss_a=torch.tensor(1.0))) == []
    report = describe_nonfinite(
        ['distill.fpn.loss_kd'],
        {'distill.fpn.loss_kd': torch.tensor(float('nan'))}, 3, 120)
    assert report == ("non-finite loss at epoch 3, iteration 120: "
                      "distill.fpn.loss_kd=nan (distillation point 'fpn')")
    assert all_finite([torch.ones(3), torch.full((2, 2), 1e38)])
    assert not all_finite([torch.ones(3), torch.tensor([1., float('nan')])])
    assert not all_finite([torch.tensor([-float('inf')])])


def _nan_after(model, calls_ok: int):
    """Make the distill loss of point ``fpn`` NaN after ``calls_ok`` calls
    (one call per FPN level, five per step)."""
    loss_fn = model.distill_losses['fpn']
    original = loss_fn.forward
    calls = []

    def forward(*args, **kwargs):
        calls.append(1)
        value = original(*args, **kwargs)
        return value * float('nan') if len(calls) > calls_ok else value

    loss_fn.forward = forward


def _data():
    inputs, samples = det_batch()
    return dict(inputs=list(inputs * 40 + 120), data_samples=samples)


def _student_params(model):
    return {k: v.detach().clone() for k, v in model.student.named_parameters()}


def _guard(model, policy='raise', momentum=0.):
    return NonFiniteGuardOptimWrapper(torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.01,
        momentum=momentum), policy=policy)


def test_raise_stops_before_the_update(saved_teacher):
    model, _ = det_distiller(saved_teacher)
    model.train()
    optim = _guard(model)
    model.train_step(_data(), optim)  # a finite step first
    _nan_after(model, 0)
    before = _student_params(model)
    with pytest.raises(NonFiniteLossError,
                       match=r"distill\.fpn\.loss=nan \(distillation point "
                             r"'fpn'\).*no checkpoint holds NaN weights"):
        model.train_step(_data(), optim)
    for name, value in model.student.named_parameters():
        torch.testing.assert_close(value, before[name])


def test_skip_leaves_weights_and_continues(saved_teacher):
    model, _ = det_distiller(saved_teacher)
    model.train()
    optim = _guard(model, 'skip')
    _nan_after(model, 5)
    first = _student_params(model)
    model.train_step(_data(), optim)  # finite: updates
    after_first = _student_params(model)
    assert any(not torch.equal(first[k], after_first[k]) for k in first)
    log_vars = model.train_step(_data(), optim)  # NaN: skipped
    assert optim.skipped_steps == 1
    assert torch.isnan(log_vars['distill.fpn.loss'])
    for name, value in model.student.named_parameters():
        torch.testing.assert_close(value, after_first[name])
        assert value.grad is None or not value.grad.abs().sum()


def test_unknown_policy_is_refused():
    layer = nn.Linear(2, 2)
    with pytest.raises(ValueError, match='policy must be one of'):
        NonFiniteGuardOptimWrapper(torch.optim.SGD(layer.parameters(),
                                                   lr=0.1), policy='ignore')


@pytest.mark.parametrize('policy', ['raise', 'skip'])
def test_nonfinite_gradient_with_finite_loss_never_reaches_weights(
        saved_teacher, policy):
    """A finite loss with a NaN gradient (e.g. a bf16 kernel bug) is caught
    before the optimizer step."""
    model, _ = det_distiller(saved_teacher)
    model.train()
    optim = _guard(model, policy, momentum=0.9)
    weight = model.student.backbone.conv1.weight
    handle = weight.register_hook(lambda grad: grad * float('nan'))
    before = _student_params(model)
    if policy == 'raise':
        with pytest.raises(NonFiniteLossError,
                           match=r'non-finite gradients .* although every '
                                 r'loss is finite, in 1 parameters \(first: '
                                 r'student\.backbone\.conv1\.weight\)'):
            model.train_step(_data(), optim)
    else:
        log_vars = model.train_step(_data(), optim)
        assert torch.isfinite(log_vars['loss'])
        assert optim.skipped_steps == 1
    for name, value in model.student.named_parameters():
        torch.testing.assert_close(value, before[name])
        assert value.grad is None or not value.grad.abs().sum()
    handle.remove()
    model.train_step(_data(), optim)  # a clean step updates again
    assert not torch.equal(weight, before['backbone.conv1.weight'])


# ------------------------------------------------ composition, precision
class Toy(BaseModel):
    """A model whose loss turns NaN on demand; records the forward dtype."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.nan = False
        self.dtypes = []

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc(inputs)
        self.dtypes.append(out.dtype)
        if mode != 'loss':
            return out
        bad = float('nan') if self.nan else 1.
        return {'student.loss_cls': out.float().pow(2).mean(),
                'distill.point.loss': out.float().mean() * bad}


def _toy_steps(wrapper_cfg: dict):
    torch.manual_seed(0)
    model = Toy()
    optim = OPTIM_WRAPPERS.build(dict(
        wrapper_cfg, _scope_='mmkdflow',
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    data = dict(inputs=torch.randn(3, 4))
    before = model.fc.weight.detach().clone()
    model.train_step(data, optim)
    assert not torch.equal(model.fc.weight, before)
    model.nan = True
    before = model.fc.weight.detach().clone()
    return model, optim, data, before


@pytest.mark.parametrize('policy', ['raise', 'skip'])
def test_guard_composes_with_bf16_autocast(policy):
    model, optim, data, before = _toy_steps(dict(
        type='NonFiniteGuardAutocastOptimWrapper', policy=policy,
        device_type='cpu', dtype='bfloat16'))
    assert model.dtypes[0] == torch.bfloat16  # autocast ran
    if policy == 'raise':
        with pytest.raises(NonFiniteLossError,
                           match=r"distill\.point\.loss=nan \(distillation "
                                 r"point 'point'\)"):
            model.train_step(data, optim)
    else:
        model.train_step(data, optim)
        assert optim.skipped_steps == 1
    torch.testing.assert_close(model.fc.weight, before)
    assert model.fc.weight.dtype == torch.float32


@pytest.mark.parametrize('policy', ['raise', 'skip'])
def test_guard_composes_with_amp_optim_wrapper(monkeypatch, policy):
    """MMEngine's AmpOptimWrapper asserts a GPU at construction; on CPU the
    test lifts that check and uses bf16 (its GradScaler then disables
    itself), which runs the same guarded update path."""
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    if not torch.cuda.is_available():
        monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                            lambda: True)
    model, optim, data, before = _toy_steps(dict(
        type='NonFiniteGuardAmpOptimWrapper', policy=policy,
        dtype='bfloat16'))
    assert isinstance(optim, AmpOptimWrapper)
    assert not optim.checks_gradients  # the loss scaler's job under AMP
    assert model.dtypes[0] == torch.bfloat16
    if policy == 'raise':
        with pytest.raises(NonFiniteLossError, match=r'distill\.point\.loss'):
            model.train_step(data, optim)
    else:
        model.train_step(data, optim)
        assert optim.skipped_steps == 1
    torch.testing.assert_close(model.fc.weight, before)


def test_built_wrappers_become_their_guarded_versions():
    """SafeTrainingHook guards the wrapper MMEngine built: the same object,
    optimizer and settings, now of the guarded class."""
    from mmengine.optim import OptimWrapperDict

    from mmkdflow.engine import AutocastOptimWrapper
    layer = nn.Linear(2, 2)

    def sgd():
        return torch.optim.SGD(layer.parameters(), lr=0.1)

    plain = OptimWrapper(sgd(), accumulative_counts=2,
                         clip_grad=dict(max_norm=1.0))
    optimizer = plain.optimizer
    assert guard_optim_wrapper(plain, 'skip') == ['OptimWrapper']
    assert type(plain) is NonFiniteGuardOptimWrapper
    assert plain.policy == 'skip' and plain.skipped_steps == 0
    assert plain.optimizer is optimizer and plain._accumulative_counts == 2
    assert guard_optim_wrapper(plain, 'raise') == []  # guarded already
    assert plain.policy == 'skip'
    autocast = AutocastOptimWrapper(sgd(), device_type='cpu',
                                    dtype='bfloat16')
    guard_optim_wrapper(autocast, 'raise')
    assert type(autocast) is NonFiniteGuardAutocastOptimWrapper
    both = OptimWrapperDict(a=OptimWrapper(sgd()), b=OptimWrapper(sgd()))
    assert guard_optim_wrapper(both, 'raise') == ['OptimWrapper'] * 2

    class OtherWrapper(OptimWrapper):
        pass

    with pytest.raises(ValueError, match=r"the non-finite guard applies to"
                       r".*not to the optim wrapper OtherWrapper; set "
                       r"SafeTrainingHook\(nonfinite='off'\)"):
        guard_optim_wrapper(OtherWrapper(sgd()), 'raise')
    assert issubclass(NonFiniteGuardOptimWrapper, OptimWrapper)
    assert issubclass(NonFiniteGuardAmpOptimWrapper, AmpOptimWrapper)
    assert NonFiniteGuardAutocastOptimWrapper.checks_gradients
