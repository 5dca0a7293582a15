"""A NaN/Inf distillation loss stops the run, or skips the step, before it
reaches the weights."""
import pytest
import torch
from conftest import det_batch
from mmengine.optim import OptimWrapper
from test_distiller import det_distiller

from mmkdflow.models.distillers.nonfinite import (NonFiniteLossError,
                                                  describe_nonfinite,
                                                  nonfinite_losses)


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


def test_raise_stops_before_the_update(saved_teacher):
    model, _ = det_distiller(saved_teacher)
    model.train()
    optim = OptimWrapper(torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.01))
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
    model, _ = det_distiller(saved_teacher, nonfinite='skip')
    model.train()
    optim = OptimWrapper(torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.01))
    _nan_after(model, 5)
    first = _student_params(model)
    model.train_step(_data(), optim)  # finite: updates
    after_first = _student_params(model)
    assert any(not torch.equal(first[k], after_first[k]) for k in first)
    log_vars = model.train_step(_data(), optim)  # NaN: skipped
    assert model.skipped_steps == 1
    assert torch.isnan(log_vars['distill.fpn.loss'])
    for name, value in model.student.named_parameters():
        torch.testing.assert_close(value, after_first[name])
        assert value.grad is None or not value.grad.abs().sum()


def test_unknown_policy_is_refused(saved_teacher):
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        det_distiller(saved_teacher, nonfinite='ignore')


@pytest.mark.parametrize('policy', ['raise', 'skip'])
def test_nonfinite_gradient_with_finite_loss_never_reaches_weights(
        saved_teacher, policy):
    """A finite loss with a NaN gradient (e.g. a bf16 kernel bug) is caught
    before the optimizer step."""
    model, _ = det_distiller(saved_teacher, nonfinite=policy)
    model.train()
    optim = OptimWrapper(torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.01,
        momentum=0.9))
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
        assert model.skipped_steps == 1
    for name, value in model.student.named_parameters():
        torch.testing.assert_close(value, before[name])
        assert value.grad is None or not value.grad.abs().sum()
    handle.remove()
    model.train_step(_data(), optim)  # a clean step updates again
    assert not torch.equal(weight, before['backbone.conv1.weight'])
