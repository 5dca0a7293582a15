"""StopDistillHook: from ``stop_epoch`` on the student trains alone, and a
resumed run is in the same state (the switch follows the epoch)."""
from types import SimpleNamespace

import pytest
from utils import config_path, tiny_resnet_cls
from utils.e2e import shrink
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmkdflow.engine.hooks import StopDistillHook
from mmkdflow.registry import HOOKS


class LossKeys(Hook):
    """Keeps ``(epoch, loss keys, teacher forwards)`` of every iteration."""

    def __init__(self):
        self.seen = []

    def before_train(self, runner):
        teacher = runner.model.teacher
        self.calls = [0]
        teacher.register_forward_pre_hook(
            lambda *_: self.calls.__setitem__(0, self.calls[0] + 1))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.seen.append((runner.epoch, sorted(outputs), self.calls[0]))
        self.calls[0] = 0


def _runner(tmp_path, max_epochs: int, stop_epoch: int, resume=False):
    """The KD digits demo (2 iterations an epoch), tiny models."""
    cfg = shrink(Config.fromfile(config_path(
        'demo', 'kd_resnet18_resnet18c8_1xb32-10e_digits-cls.py')), 'cls',
        str(tmp_path / 'digits_cls'), str(tmp_path / 'work'), batch_size=32)
    cfg.model.student = tiny_resnet_cls(8)
    cfg.model.teacher = tiny_resnet_cls(16)
    cfg.model.teacher_ckpt = None
    cfg.model.allow_random_teacher = True
    cfg.train_cfg.max_epochs = max_epochs
    cfg.train_cfg.val_interval = 100
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint.interval = 1
    cfg.custom_hooks = [
        *cfg.custom_hooks[:2],
        dict(type='mmkdflow.StopDistillHook', stop_epoch=stop_epoch)]
    cfg.resume = resume
    runner = Runner.from_cfg(cfg)
    keys = LossKeys()
    runner.register_hook(keys)
    return runner, keys


def test_distillation_stops_at_the_epoch_and_stays_stopped_on_resume(
        tmp_path):
    runner, keys = _runner(tmp_path, max_epochs=1, stop_epoch=1)
    runner.train()
    assert len(keys.seen) == 2
    for epoch, loss_keys, teacher_calls in keys.seen:
        assert epoch == 0 and teacher_calls == 1
        assert any(k.startswith('distill.') for k in loss_keys), loss_keys
    assert runner.model.distill_stopped is False

    # resumed from epoch_1.pth into epoch 2 (index 1): no distillation,
    # no teacher forward, the student's own losses go on
    runner, keys = _runner(tmp_path, max_epochs=2, stop_epoch=1,
                           resume=True)
    runner.train()
    assert [epoch for epoch, _, _ in keys.seen] == [1, 1]
    for _, loss_keys, teacher_calls in keys.seen:
        assert teacher_calls == 0
        assert not any(k.startswith('distill.') for k in loss_keys)
        assert 'student.loss' in loss_keys, loss_keys
    assert runner.model.distill_stopped is True


def test_the_hook_is_registered_and_checks_its_settings():
    hook = HOOKS.build(dict(type='mmkdflow.StopDistillHook', stop_epoch=3))
    assert isinstance(hook, StopDistillHook) and hook.stop_epoch == 3
    for bad in (-1, 2.5, True, None):
        with pytest.raises(ValueError, match='stop_epoch must be an integer'):
            StopDistillHook(bad)
    runner = SimpleNamespace(model=SimpleNamespace(), train_loop=None)
    with pytest.raises(TypeError, match='needs an mmkdflow Distiller'):
        hook.before_train(runner)
    runner.model.distill_stopped = False
    with pytest.raises(ValueError, match='counts epochs'):
        hook.before_train(runner)


def test_the_switch_follows_the_epoch_both_ways():
    """Derived before each epoch: a run resumed before ``stop_epoch``
    distils again, whatever the model's state was."""
    hook = StopDistillHook(stop_epoch=2)
    model = SimpleNamespace(distill_stopped=True)
    logged = []
    runner = SimpleNamespace(model=model, epoch=1, logger=SimpleNamespace(
        info=logged.append))
    hook.before_train_epoch(runner)
    assert model.distill_stopped is False and not logged
    runner.epoch = 2
    hook.before_train_epoch(runner)
    assert model.distill_stopped is True
    assert logged == ['StopDistillHook: distillation stopped at epoch 3 '
                      '(stop_epoch=2); the student trains alone']
