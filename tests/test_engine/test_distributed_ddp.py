"""DDP readiness: every connector parameter used, SyncBN to BN without GPU."""
import torch
from utils import tiny_deeplabv3, tiny_retinanet

from mmkdflow import distributed
from mmkdflow.models.utils import model_builder


def test_every_connector_parameter_gets_a_gradient():
    """DDP runs with find_unused_parameters=False (MMEngine's default):
    the DiffKD and FM-KT feature connectors (and the adapters) use all
    their parameters in every training step, so their configs need no
    find_unused_parameters. (The FM-KT logit-flow configs replace the
    student's classifier, which is then unused: those configs set
    ``model_wrapper_cfg.find_unused_parameters=True`` and say why.)"""
    from utils import det_batch

    from mmkdflow.models import Distiller
    connectors = dict(
        diffkd=dict(type='DiffKDConnector', student_channels=16,
                    teacher_channels=32, use_ae=True, ae_channels=8,
                    kd_loss=dict(type='MSELoss')),
        # as the FM-KT detection configs: no loss on the last level
        fmkt=dict(type='FMKTFeatureConnector', channels=16, num_steps=2,
                  num_steps_choices=(1, 2), teacher_proj=32,
                  dirac_ratio=0.5, level_weights=[10, 10, 10, 10, 0]),
        adapter=dict(type='ConvAdapter', in_channels=16, out_channels=32))
    for name, connector in connectors.items():
        point = dict(student='neck', teacher='neck', index=(0, 1, 2, 3, 4),
                     connector=connector, replace=name == 'fmkt')
        if name == 'adapter':
            point['loss'] = dict(type='PKDLoss')
        torch.manual_seed(0)
        model = Distiller(student=tiny_retinanet(8, 16),
                                 teacher=tiny_retinanet(16, 32),
                                 allow_random_teacher=True,
                                 distill_points=dict(p=point))
        model.train()
        for seed in (0, 1):  # random step counts / pairings / timesteps
            model.zero_grad()
            losses = model(*det_batch(seed=seed), mode='loss')
            model.parse_losses(losses)[0].backward()
            unused = [n for n, p in model.named_parameters()
                      if p.requires_grad and p.grad is None]
            assert not unused, (name, unused)


def test_syncbn_becomes_bn_without_gpu_and_stays_with_one(monkeypatch):
    logged = []
    monkeypatch.setattr(distributed, 'print_log',
                        lambda msg, *a, **k: logged.append(msg))
    cfg = tiny_deeplabv3(8)
    syncbn = dict(type='SyncBN', requires_grad=True)
    cfg['backbone']['norm_cfg'] = cfg['decode_head']['norm_cfg'] = syncbn

    monkeypatch.setattr(distributed, 'gpu_available', lambda: True)
    on_gpu = model_builder.build_task_model(cfg, 'student')
    kinds = {type(m).__name__ for m in on_gpu.modules()}
    assert 'SyncBatchNorm' in kinds and not logged

    monkeypatch.setattr(distributed, 'gpu_available', lambda: False)
    torch.manual_seed(0)
    on_cpu = model_builder.build_task_model(cfg, 'student')
    assert not any(type(m).__name__ == 'SyncBatchNorm'
                   for m in on_cpu.modules())
    assert any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
               for m in on_cpu.modules())
    assert len(logged) == 1 and 'SyncBN layer(s) of the student to BN' \
        in logged[0]
    # the converted model trains and keeps SyncBN's parameter names
    assert set(on_cpu.state_dict()) == set(on_gpu.state_dict())
    from utils import seg_batch
    losses = on_cpu(*seg_batch(), mode='loss')
    assert torch.isfinite(sum(v for k, v in losses.items() if 'loss' in k))

    # the mmseg package config the FM-KT/DiffKD Cityscapes configs extend
    package = dict(cfg_path='mmseg::deeplabv3/'
                   'deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py')
    for cuda in (True, False):
        monkeypatch.setattr(distributed, 'gpu_available', lambda: cuda)
        model = model_builder.build_task_model(package, 'student')
        count = sum(type(m).__name__ == 'SyncBatchNorm'
                    for m in model.modules())
        assert (count > 0) if cuda else (count == 0)
    assert len(logged) == 2
