"""FM-KT end to end with MMEngine's Runner on the Digits demos.

DigitsDet (real RetinaNet): the feature flow on the FPN levels trains with
the connector EMA, validates with the EMA weights, checkpoints the EMA,
resumes it, and ``tools/export_student.py`` writes the deployable model
(student + EMA flow) that the student checkpoint hook also saves.
DigitsCls (real mmpretrain classifier): the logit flow trains, validates
and exports. (Loading the exported models through mmdet's and
mmpretrain's APIs: test_fmkt_export.py.) Plus a fast unit test of the EMA
hook on a DDP-wrapped model.
"""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from utils import config_path, tiny_resnet_cls, tiny_retinanet
from utils.e2e import run_tool, shrink
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmkdflow.engine.hooks import ConnectorEMAHook
from mmkdflow.engine.checkpoint.layout import CONNECTOR_EMA_KEY
from mmkdflow.models.fmkt import FMKTFeatureConnector


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


class _Probe(Hook):
    """Snapshots of the flow's weights around validation and at the start
    of training."""

    priority = 'LOWEST'  # after ConnectorEMAHook's swap

    def __init__(self):
        self.live = self.ema = self.in_val = self.post_val = None
        self.ema_at_start = None

    def _ema_hook(self, runner):
        return next(h for h in runner.hooks
                    if isinstance(h, ConnectorEMAHook))

    def before_train(self, runner):
        self.ema_at_start = {k: v.clone() for k, v in self._ema_hook(
            runner).ema_model.state_dict().items()}

    def after_train_epoch(self, runner):
        self.live = _params(runner.model.connectors)
        self.ema = _params(self._ema_hook(runner).ema_model.module)

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        if batch_idx == 0:
            self.in_val = _params(runner.model.connectors)

    def after_val(self, runner):
        self.post_val = _params(runner.model.connectors)


@pytest.mark.slow
def test_fmkt_retinanet_ema_resume_export(tmp_path, saved_teacher):
    data_root = str(tmp_path / 'digits_det')
    teacher_ckpt, _ = saved_teacher(tiny_retinanet(8, 32))
    cfg_path = config_path(
        'demo',
        'fmkt_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det.py')
    student = tiny_retinanet(8, 16)
    student['test_cfg']['score_thr'] = 0.0  # keep boxes to compare

    def distill_cfg(max_epochs):
        cfg = shrink(Config.fromfile(cfg_path), 'det', data_root,
                     str(tmp_path / 'distill'))
        cfg.model.student = student
        cfg.model.teacher = tiny_retinanet(8, 32)
        cfg.model.teacher_ckpt = teacher_ckpt
        cfg.model.distill_points.fpn.connector.update(
            channels=16, teacher_proj=32)
        cfg.train_cfg.max_epochs = max_epochs
        cfg.train_cfg.val_interval = 1
        cfg.default_hooks.checkpoint.interval = 1
        cfg.default_hooks.checkpoint.max_keep_ckpts = 3
        cfg.param_scheduler = []
        return cfg

    # 1. one epoch: the EMA lags the live flow and validation uses it
    runner = Runner.from_cfg(distill_cfg(1))
    probe = _Probe()
    runner.register_hook(probe)
    runner.train()
    iters = len(runner.train_dataloader)
    scalars = runner.message_hub.log_scalars
    levels = len(Config.fromfile(cfg_path).model.distill_points.fpn.index)
    assert {f'train/distill.fpn.loss_flow_l{k}' for k in range(levels)} \
        <= set(scalars)
    assert f'train/distill.fpn.loss_flow_l{levels}' not in scalars
    assert 'val/coco/bbox_mAP' in scalars
    assert not _same(probe.live, probe.ema)
    assert _same(probe.in_val, probe.ema)  # validated with the EMA
    assert _same(probe.post_val, probe.live)  # and swapped back
    ckpt = torch.load(str(tmp_path / 'distill' / 'epoch_1.pth'),
                      weights_only=False)
    saved_ema = ckpt[CONNECTOR_EMA_KEY]
    assert int(saved_ema['steps']) == iters
    key = 'fpn.flows.fields.0.meta_encoder.0.fc1.weight'
    assert not torch.equal(saved_ema[f'module.{key}'],
                           ckpt['state_dict'][f'connectors.{key}'])

    # 2. resume: the EMA continues from the checkpoint's
    cfg = distill_cfg(2)
    cfg.train_cfg.val_interval = 3  # validated above already
    cfg.resume = True
    cfg.load_from = str(tmp_path / 'distill' / 'epoch_1.pth')
    resumed = Runner.from_cfg(cfg)
    probe = _Probe()
    resumed.register_hook(probe)
    resumed.train()
    assert set(probe.ema_at_start) == set(saved_ema)
    for key, value in saved_ema.items():
        assert torch.equal(probe.ema_at_start[key], value), key
    ema_hook = probe._ema_hook(resumed)
    assert int(ema_hook.ema_model.steps) == 2 * iters

    # 3. export: student + EMA flow, the same deployable model as the
    # hook's student checkpoint
    out = str(tmp_path / 'export' / 'deploy.pth')
    run_tool('tools/export_student.py', cfg_path,
             str(tmp_path / 'distill' / 'epoch_2.pth'), out)
    exported = torch.load(out, weights_only=False)['state_dict']
    hooked = torch.load(str(tmp_path / 'distill' / 'epoch_2_student.pth'),
                        weights_only=False)['state_dict']
    assert set(hooked) == set(exported)
    assert any(k.startswith('connectors.fpn.') for k in hooked)
    assert not any(k.startswith('teacher.') for k in hooked)
    for key, value in exported.items():
        assert torch.equal(hooked[key], value), key
    ema = ema_hook.ema_model.module.state_dict()
    for key, value in ema.items():
        assert torch.equal(exported[f'connectors.{key}'], value), key
    out_cfg = Config.fromfile(osp.splitext(out)[0] + '.py')
    assert out_cfg.model.type == 'mmkdflow.Distiller'
    assert list(out_cfg.model.distill_points) == ['fpn']


@pytest.mark.slow
def test_fmkt_logit_flow_classifier_train_export(tmp_path, saved_teacher):
    data_root = str(tmp_path / 'digits_cls')
    teacher_ckpt, _ = saved_teacher(tiny_resnet_cls(16))
    cfg_path = config_path(
        'demo', 'fmkt_resnet18_resnet18c8_1xb32-10e_digits-cls.py')
    cfg = shrink(Config.fromfile(cfg_path), 'cls', data_root,
                 str(tmp_path / 'distill'))
    student = tiny_resnet_cls(8)
    cfg.model.student = student
    cfg.model.teacher = tiny_resnet_cls(16)
    cfg.model.teacher_ckpt = teacher_ckpt
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    cfg.default_hooks.checkpoint.interval = 1
    cfg.param_scheduler = []
    # every 4th of the 64 training crops: 4 iterations
    cfg.train_dataloader.dataset.indices = \
        cfg.train_dataloader.dataset.indices[::4]
    runner = Runner.from_cfg(cfg)
    before = _params(runner.model.connectors)
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert {'train/distill.flow.loss_flow', 'train/distill.flow.loss_ce',
            'val/accuracy/top1'} <= set(scalars)
    assert not _same(before, _params(runner.model.connectors))

    out = str(tmp_path / 'export' / 'deploy.pth')
    run_tool('tools/export_student.py', cfg_path,
             str(tmp_path / 'distill' / 'epoch_1.pth'), out)
    exported = torch.load(out, weights_only=False)['state_dict']
    live = runner.model.state_dict()
    assert any(k.startswith('connectors.flow.') for k in exported)
    assert not any(k.startswith('teacher.') for k in exported)
    for key, value in exported.items():
        assert torch.equal(live[key], value), key
    out_cfg = Config.fromfile(osp.splitext(out)[0] + '.py')
    assert out_cfg.model.type == 'mmkdflow.Distiller'
    assert out_cfg.default_scope == 'mmpretrain'


def test_connector_ema_hook_unwraps_ddp_and_averages(tmp_path):
    """The hook averages ``model.module.connectors`` of a DDP-wrapped model
    (one-process gloo group) with MMEngine's EMA: avg <- decay * avg +
    (1 - decay) * live."""
    from types import SimpleNamespace

    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel

    with pytest.raises(ValueError, match='not both'):
        ConnectorEMAHook(decay=0.9, momentum=0.1)
    with pytest.raises(ValueError, match='decay'):
        ConnectorEMAHook(decay=1.0)

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.connectors = nn.ModuleDict(dict(
                fpn=FMKTFeatureConnector(4, 'conv', num_steps=1),
                other=FMKTFeatureConnector(4, 'conv', num_steps=1)))

        def forward(self, x):
            return x

    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/pg',
                            rank=0, world_size=1)
    try:
        holder = Holder()
        runner = SimpleNamespace(model=MMDistributedDataParallel(holder))
        with pytest.raises(ValueError, match='nope'):
            ConnectorEMAHook(points=['nope']).before_run(runner)
        hook = ConnectorEMAHook(decay=0.75, points=['fpn'])
        hook.before_run(runner)
    finally:
        dist.destroy_process_group()
    assert list(hook.src_model) == ['fpn']
    assert hook.src_model['fpn'] is holder.connectors['fpn']
    live = holder.connectors['fpn'].field(0).meta_encoder[1].weight
    start = live.detach().clone()
    hook.ema_model.update_parameters(hook.src_model)  # step 0: a copy
    with torch.no_grad():
        live.add_(1.0)
    hook.ema_model.update_parameters(hook.src_model)
    averaged = hook.ema_model.module['fpn'].field(0).meta_encoder[1].weight
    torch.testing.assert_close(averaged, 0.75 * start + 0.25 * (start + 1))
    hook._swap_ema_parameters()  # what validation sees
    torch.testing.assert_close(live, 0.75 * start + 0.25 * (start + 1))
    hook._swap_ema_parameters()
    torch.testing.assert_close(live, start + 1)
