"""Interrupted training: SIGKILL, ``tools/train.py --resume``, same losses;
checkpoints are never half-written."""
import os
import os.path as osp
import sys

import pytest
import torch
from conftest import config_path, tiny_retinanet
from e2e_utils import shrink
from mmengine.config import Config
from test_distributed import (PROBE_MODULE, read_probe, run, save_teacher,
                              tool_env, write_probe)

ITERS_PER_EPOCH = 3  # 12 training canvases, batch 4
EPOCHS = 3


def resume_config(tmp_path, name: str, data_root: str, teacher_ckpt: str,
                  **probe) -> str:
    """A DiffKD distiller (random noise and timesteps in every step) with
    the connector EMA, a warm-up + step LR schedule, SGD momentum, a
    checkpoint and a validation after every epoch."""
    cfg = shrink(Config.fromfile(config_path(
        'demo', 'pkd_retinanet_r18_r18c16_digits.py')), 'det', data_root,
        str(tmp_path / name), batch_size=4)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.digits_options = dict(
            seed=0, num_train=12, num_val=4, image_size=64)
    cfg.model.student = tiny_retinanet(8, 16)
    cfg.model.teacher = tiny_retinanet(16, 32)
    cfg.model.teacher_ckpt = teacher_ckpt
    cfg.model.distill_points.fpn = dict(
        student='neck', teacher='neck', index=(0, 1, 2, 3, 4),
        connector=dict(type='DiffKDConnector', student_channels=16,
                       teacher_channels=32, use_ae=True, ae_channels=8,
                       kd_loss=dict(type='MSELoss', loss_weight=1.0)),
        loss=None)
    cfg.train_cfg.max_epochs = EPOCHS
    cfg.train_cfg.val_interval = 1
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=4),
        dict(type='MultiStepLR', by_epoch=True, begin=0, end=EPOCHS,
             milestones=[2], gamma=0.1)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1,
                                        max_keep_ckpts=3)
    cfg.log_processor = dict(window_size=1)
    cfg.custom_imports = dict(imports=['mmkdflow', PROBE_MODULE],
                              allow_failed_imports=False)
    cfg.custom_hooks = [
        dict(type='mmkdflow.ConnectorEMAHook', decay=0.9),
        dict(type='mmkdflow.StudentCheckpointHook'),
        dict(type='LossProbeHook', out=str(tmp_path / f'{name}_losses'),
             **probe)]
    path = str(tmp_path / f'{name}.py')
    cfg.dump(path)
    return path


def killed(cmd, env) -> None:
    import subprocess
    from e2e_utils import ROOT
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == -9, (proc.returncode, proc.stderr[-4000:])


def assert_same_losses(got: list, want: dict) -> None:
    for record in got:
        expected = want[record['iter']]
        assert record['img_ids'] == expected['img_ids']
        for key, value in expected['losses'].items():
            # same process set-up, same states: bitwise equal in practice
            assert record['losses'][key] == pytest.approx(
                value, rel=1e-6, abs=1e-8), (record['iter'], key)


@pytest.mark.slow
def test_sigkill_and_resume_continue_like_an_uninterrupted_run(tmp_path):
    write_probe(str(tmp_path))
    data_root = str(tmp_path / 'digits_det')
    teacher = save_teacher(tmp_path)
    env = tool_env(tmp_path)

    # the uninterrupted run
    ref_cfg = resume_config(tmp_path, 'ref', data_root, teacher)
    run([sys.executable, 'tools/train.py', ref_cfg], env)
    reference = {r['iter']: r for r in read_probe(str(tmp_path /
                                                      'ref_losses'))}
    assert sorted(reference) == list(range(EPOCHS * ITERS_PER_EPOCH))

    # killed halfway through writing the epoch-2 checkpoint: half of its
    # bytes reached the disk, none of them under the checkpoint's name
    work = tmp_path / 'cut'
    cut_cfg = resume_config(tmp_path, 'cut', data_root, teacher,
                            kill_in_save=2)
    killed([sys.executable, 'tools/train.py', cut_cfg], env)
    assert not (work / 'epoch_2.pth').exists()
    leftovers = [f for f in os.listdir(work) if f.endswith('.tmp')]
    assert len(leftovers) == 1 and leftovers[0].startswith('.epoch_2.pth.')
    assert (work / 'last_checkpoint').read_text().endswith('epoch_1.pth')
    first = torch.load(str(work / 'epoch_1.pth'))  # complete, safe loading
    assert first['meta']['epoch'] == 1 and 'random_states' in first
    assert 'connector_ema_state_dict' in first

    # resumed (latest checkpoint: epoch 1), then killed after iteration 7,
    # in epoch 3 after the epoch-2 checkpoint
    killed([sys.executable, 'tools/train.py', cut_cfg, '--resume',
            '--cfg-options', 'custom_hooks.2.kill_in_save=None',
            'custom_hooks.2.kill_after_iter=7'], env)
    assert (work / 'last_checkpoint').read_text().endswith('epoch_2.pth')

    # resumed again (epoch 2), to the end
    run([sys.executable, 'tools/train.py', cut_cfg, '--resume',
         '--cfg-options', 'custom_hooks.2.kill_in_save=None'], env)

    records = read_probe(str(tmp_path / 'cut_losses'))
    iters = [r['iter'] for r in records]
    # run 1: 0..5, killed in the save; run 2: 3..7; run 3: 6..8
    assert iters == [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7, 6, 7, 8]
    assert_same_losses(records, reference)

    # the final checkpoints agree: weights, optimizer, schedulers, EMA
    ref_ckpt = torch.load(str(tmp_path / 'ref' / f'epoch_{EPOCHS}.pth'))
    got_ckpt = torch.load(str(work / f'epoch_{EPOCHS}.pth'))
    for key in ('state_dict', 'connector_ema_state_dict'):
        torch.testing.assert_close(got_ckpt[key], ref_ckpt[key], rtol=1e-6,
                                   atol=1e-7)
    torch.testing.assert_close(got_ckpt['optimizer'], ref_ckpt['optimizer'],
                               rtol=1e-6, atol=1e-7)
    assert got_ckpt['param_schedulers'] == ref_ckpt['param_schedulers']
    assert got_ckpt['meta']['iter'] == EPOCHS * ITERS_PER_EPOCH
    assert osp.isfile(work / f'epoch_{EPOCHS}_student.pth')
