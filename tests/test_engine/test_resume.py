"""Interrupted training: SIGKILL at any iteration or inside a checkpoint
write, ``tools/train.py --resume``, and every later loss equals the
uninterrupted run's (same batches, same random draws), mid-epoch included.

Runs: tiny RetinaNets on 12 DigitsDet canvases, batch 4 (3 iterations per
epoch), 3 epochs with a validation after each, an iteration checkpoint every
2 iterations with ``max_keep_ckpts=1`` (the demo schedules' setting): most
checkpoints fall inside an epoch.

It stays one file: its tests check one guarantee (a resumed run continues
like the uninterrupted one), and its slow tests share the module-level
setup (the schedule constants, the probe hook and the shrunk configs).
"""
import json
import os
import os.path as osp
import random
import subprocess
import sys

import pytest
import torch
from utils import config_path, tiny_retinanet
from utils.e2e import ROOT, shrink
from mmengine.config import Config
from test_distributed_gloo import run, save_teacher, tool_env

from mmkdflow.engine.checkpoint import load_checkpoint_file

ITERS_PER_EPOCH = 3  # 12 training canvases, batch 4
EPOCHS = 3
TOTAL = ITERS_PER_EPOCH * EPOCHS
CKPT_INTERVAL = 2

# ------------------------------------------------- fast: in one process
class NoisyData(torch.utils.data.Dataset):
    """Draws from the global generator when loaded, as random transforms
    in the main process (``num_workers=0``) do."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=torch.full((2, ), float(index)) + torch.rand(2),
                    index=index)


def _noisy_model():
    from mmengine.model import BaseModel

    class NoisyModel(BaseModel):
        """Draws noise in every step, as DiffKD and FM-KT do."""

        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

        def forward(self, inputs, index=None, mode='tensor'):
            out = self.linear(torch.stack(inputs))
            noise = 0.1 * torch.randn_like(out)
            return dict(loss=(out + noise).pow(2).mean())

    return NoisyModel()


def _recorder():
    from mmengine.hooks import Hook

    class Recorder(Hook):
        priority = 'LOWEST'

        def __init__(self):
            self.records = []
            self.etas = []  # seconds left, from MMEngine's IterTimerHook

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            self.records.append((runner.iter, runner.epoch, batch_idx,
                                 list(data_batch['index']),
                                 float(outputs['loss'])))
            self.etas.append(runner.message_hub.get_info('eta'))

    return Recorder()


def noisy_runner(work_dir, loop: str, resume_from=None, workers: int = 0,
                 batch_size: int = 2):
    """A real Runner: 8 noisy samples, batch 2, shuffled; an iteration
    checkpoint every 3 iterations; random states saved."""
    from mmengine.runner import Runner
    recorder = _recorder()
    if 'Epoch' in loop:
        train_cfg = dict(type=loop, max_epochs=3)
        sampler = dict(type='DefaultSampler', shuffle=True)
    else:
        train_cfg = dict(type=loop, max_iters=12)
        sampler = dict(type='InfiniteSampler', shuffle=True)
    runner = Runner(
        model=_noisy_model(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=NoisyData(), batch_size=batch_size,
                              sampler=sampler, num_workers=workers,
                              persistent_workers=False),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05,
                                          momentum=0.9)),
        train_cfg=train_cfg,
        default_hooks=dict(checkpoint=dict(
            type='mmkdflow.SafeCheckpointHook', by_epoch=False, interval=3)),
        custom_hooks=[dict(type='mmkdflow.ResumeStateHook'), recorder],
        randomness=dict(seed=0), resume=resume_from is not None,
        load_from=resume_from, default_scope='mmengine',
        log_level='WARNING')
    return runner, recorder


@pytest.mark.parametrize('loop,workers', [
    ('mmkdflow.ResumableEpochBasedTrainLoop', 0),
    ('mmkdflow.ResumableEpochBasedTrainLoop', 2),  # skipped batches loaded
    ('mmkdflow.ResumableIterBasedTrainLoop', 0)])
def test_resume_inside_an_epoch_matches_the_uninterrupted_run(tmp_path,
                                                              loop, workers):
    runner, reference = noisy_runner(tmp_path / 'ref', loop, workers=workers)
    runner.train()
    assert [r[0] for r in reference.records] == list(range(12))
    # resumed from iter_6.pth: inside epoch 2 (2 of its 4 batches trained)
    # for the epoch-based loop
    runner, resumed = noisy_runner(tmp_path / 'cut', loop,
                                   str(tmp_path / 'ref' / 'iter_6.pth'),
                                   workers=workers)
    runner.train()
    assert resumed.records == reference.records[6:]
    assert runner.iter == 12
    assert min(resumed.etas) >= 0 and resumed.etas[-1] == 0


def test_mmengine_epoch_loop_restarts_the_epoch_the_control(tmp_path):
    """The control: MMEngine's EpochBasedTrainLoop resumed from the same
    checkpoint trains the epoch's first batches again and runs past 12."""
    runner, reference = noisy_runner(tmp_path / 'ref',
                                     'mmkdflow.ResumableEpochBasedTrainLoop')
    runner.train()
    runner, resumed = noisy_runner(tmp_path / 'cut', 'EpochBasedTrainLoop',
                                   str(tmp_path / 'ref' / 'iter_6.pth'))
    runner.train()
    assert resumed.records[0][:3] == (6, 1, 0)  # batch 0 of epoch 2 again
    assert runner.iter == 14
    assert resumed.etas[-1] < 0  # MMEngine's "eta: -1 day, 23:59:..."


def test_mid_epoch_resume_with_other_batches_per_epoch_is_refused(
        tmp_path):
    runner, _ = noisy_runner(tmp_path / 'ref',
                             'mmkdflow.ResumableEpochBasedTrainLoop')
    runner.train()
    runner, _ = noisy_runner(tmp_path / 'cut',
                             'mmkdflow.ResumableEpochBasedTrainLoop',
                             str(tmp_path / 'ref' / 'iter_6.pth'),
                             batch_size=4)
    with pytest.raises(ValueError, match=r'written after 2 of the 4 batches '
                       r'of epoch 2, but this run has 2 batches per epoch: '
                       r'resume with the dataset, batch size'):
        runner.train()


# ------------------------------------------- slow: SIGKILL, tools/train.py
PROBE_MODULE = 'kd_resume_probe'
PROBE_SOURCE = '''
"""Test-only hook: record each iteration's losses; SIGKILL the process
after iteration ``kill_after_iter``, or halfway through writing the
checkpoint ``iter_<kill_in_save>.pth`` (half of its bytes on disk)."""
import json
import os
import signal

from mmengine.fileio.backends.local_backend import LocalBackend
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KillProbeHook(Hook):

    priority = 'LOWEST'

    def __init__(self, out, kill_after_iter=None, kill_in_save=None):
        self.out = out
        self.kill_after_iter = kill_after_iter
        if kill_in_save is not None:
            real_put = LocalBackend.put
            marker = f'.iter_{kill_in_save}.pth.'

            def put(backend, obj, filepath):
                if os.path.basename(filepath).startswith(marker):
                    with open(filepath, 'wb') as f:
                        f.write(obj[:len(obj) // 2])
                        f.flush()
                        os.fsync(f.fileno())
                    _die()
                real_put(backend, obj, filepath)

            LocalBackend.put = put

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        record = dict(
            iter=runner.iter, epoch=runner.epoch, batch_idx=batch_idx,
            img_ids=[int(s.img_id) for s in data_batch['data_samples']],
            losses={k: float(v.detach()) for k, v in outputs.items()})
        with open(self.out, 'a') as f:
            f.write(json.dumps(record) + '\\n')
        if runner.iter == self.kill_after_iter:
            _die()
'''


def method_config(tmp_path, method: str, name: str, data_root: str,
                  teacher_ckpt: str, **probe) -> str:
    """The DiffKD or FM-KT DigitsDet demo config, shrunk (see module
    docstring), with the probe hook; dumped to ``tmp_path/<name>.py``."""
    suffix = '_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det.py'
    demo = dict(diffkd='diffkd' + suffix, fmkt='fmkt' + suffix)[method]
    cfg = shrink(Config.fromfile(config_path('demo', demo)), 'det',
                 data_root, str(tmp_path / name), batch_size=4)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.digits_options = dict(
            seed=0, num_train=12, num_val=4, image_size=64)
    cfg.model.student = tiny_retinanet(8, 16)
    cfg.model.teacher = tiny_retinanet(16, 32)
    cfg.model.teacher_ckpt = teacher_ckpt
    connector = cfg.model.distill_points.fpn.connector
    if method == 'diffkd':
        connector.update(student_channels=16, teacher_channels=32,
                         latent_channels=32, num_inference_steps=2)
    else:
        connector.update(channels=16, teacher_proj=32)
    cfg.train_cfg.max_epochs = EPOCHS
    cfg.train_cfg.val_interval = 1
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=4),
        dict(type='MultiStepLR', by_epoch=True, begin=0, end=EPOCHS,
             milestones=[2], gamma=0.1)]
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=CKPT_INTERVAL,
        max_keep_ckpts=1)
    cfg.log_processor = dict(window_size=1)
    cfg.custom_imports = dict(imports=['mmkdflow', PROBE_MODULE],
                              allow_failed_imports=False)
    hooks = [h for h in cfg.get('custom_hooks', [])]
    hooks.append(dict(type='KillProbeHook',
                      out=str(tmp_path / f'{name}.jsonl'), **probe))
    cfg.custom_hooks = hooks
    path = str(tmp_path / f'{name}.py')
    cfg.dump(path)
    return path


def killed(cmd, env) -> None:
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == -9, (proc.returncode, proc.stderr[-4000:])


def records(tmp_path, name: str) -> list:
    with open(tmp_path / f'{name}.jsonl') as f:
        return [json.loads(line) for line in f]


def assert_same_losses(got: list, want: dict) -> None:
    for record in got:
        expected = want[record['iter']]
        where = (record['iter'], record['epoch'], record['batch_idx'])
        assert (record['epoch'], record['batch_idx']) == (
            expected['epoch'], expected['batch_idx']), where
        assert record['img_ids'] == expected['img_ids'], where
        assert record['losses'].keys() == expected['losses'].keys()
        for key, value in expected['losses'].items():
            assert record['losses'][key] == pytest.approx(
                value, rel=1e-6, abs=1e-8), (where, key)


def probe_index(path: str) -> int:
    """Where the probe hook sits in ``custom_hooks`` (for --cfg-options)."""
    return len(Config.fromfile(
        path, import_custom_modules=False).custom_hooks) - 1


def last_checkpoint(work) -> int:
    """The iteration of the checkpoint ``last_checkpoint`` names."""
    name = osp.basename((work / 'last_checkpoint').read_text())
    assert name.startswith('iter_'), name
    return int(name[5:-4])


@pytest.mark.slow
@pytest.mark.parametrize('method', ['diffkd', 'fmkt'])
def test_sigkill_anywhere_and_resume_continue_like_an_uninterrupted_run(
        tmp_path, method):
    with open(tmp_path / f'{PROBE_MODULE}.py', 'w') as f:
        f.write(PROBE_SOURCE)
    data_root = str(tmp_path / 'digits_det')
    teacher = save_teacher(tmp_path)
    env = tool_env(tmp_path)
    train = [sys.executable, 'tools/train.py']

    ref_cfg = method_config(tmp_path, method, 'ref', data_root, teacher)
    run(train + [ref_cfg], env)
    reference = {r['iter']: r for r in records(tmp_path, 'ref')}
    assert sorted(reference) == list(range(TOTAL))

    work = tmp_path / 'cut'
    # a random iteration that is not the last of an epoch, after the
    # first checkpoint (iteration 2) and before the last one
    kill_at = random.choice([i for i in range(CKPT_INTERVAL, TOTAL - 1)
                             if (i + 1) % ITERS_PER_EPOCH])
    expected_iters = []
    if method == 'diffkd':
        # first killed while writing iter_4.pth (inside epoch 2): iter_2.pth
        # (inside epoch 1) must survive max_keep_ckpts=1
        cut_cfg = method_config(tmp_path, method, 'cut', data_root, teacher,
                                kill_in_save=4)
        killed(train + [cut_cfg], env)
        assert not (work / 'iter_4.pth').exists()
        assert [f for f in os.listdir(work) if f.startswith('.iter_4.pth.')]
        assert last_checkpoint(work) == 2
        assert load_checkpoint_file(
            str(work / 'iter_2.pth'))['meta']['iter'] == 2
        # iteration 3 wrote iter_4.pth before its record: not recorded
        expected_iters += list(range(3))
        kill_at = max(kill_at, 4)
        probe = f'custom_hooks.{probe_index(cut_cfg)}'
        resume = ['--resume', '--cfg-options', f'{probe}.kill_in_save=None']
        killed(train + [cut_cfg] + resume +
               [f'{probe}.kill_after_iter={kill_at}'], env)
        # the temporary file of the killed save was removed at the start
        assert not [f for f in os.listdir(work) if f.endswith('.tmp')]
        expected_iters += list(range(2, kill_at + 1))
    else:
        cut_cfg = method_config(tmp_path, method, 'cut', data_root, teacher,
                                kill_after_iter=kill_at)
        killed(train + [cut_cfg], env)
        expected_iters += list(range(kill_at + 1))
        resume = ['--resume', '--cfg-options',
                  f'custom_hooks.{probe_index(cut_cfg)}.kill_after_iter=None']
    saved = last_checkpoint(work)
    assert saved == (kill_at + 1) // CKPT_INTERVAL * CKPT_INTERVAL
    run(train + [cut_cfg] + resume, env)
    expected_iters += list(range(saved, TOTAL))

    got = records(tmp_path, 'cut')
    assert [r['iter'] for r in got] == expected_iters, kill_at
    assert_same_losses(got, reference)

    # the final checkpoints agree: weights, optimizer, schedulers
    ref_ckpt = load_checkpoint_file(
        str(tmp_path / 'ref' / f'iter_{TOTAL}.pth'))
    got_ckpt = load_checkpoint_file(str(work / f'iter_{TOTAL}.pth'))
    torch.testing.assert_close(got_ckpt['state_dict'],
                               ref_ckpt['state_dict'], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got_ckpt['optimizer'], ref_ckpt['optimizer'],
                               rtol=1e-6, atol=1e-7)
    assert got_ckpt['param_schedulers'] == ref_ckpt['param_schedulers']
    assert got_ckpt['meta']['iter'] == TOTAL
    # the Runner's checkpoints leave the frozen teacher out (issue 25)
    for ckpt in (ref_ckpt, got_ckpt):
        assert not [k for k in ckpt['state_dict'] if k.startswith('teacher.')]
        assert 'teacher_identity.sha256' in ckpt['state_dict']
    # max_keep_ckpts=1 rotated the student exports with their checkpoints
    assert sorted(f for f in os.listdir(work) if f.endswith('.pth')) == [
        f'iter_{TOTAL}.pth', f'iter_{TOTAL}_student.pth']


# ------------------------------- slow: every entry point, plain-Runner kill
#: A plain MMEngine run of a config (argv: config, work dir, JSON of
#: config keys to set): what a user's own script does.
PLAIN_RUNNER = '''
import json, sys
from mmengine.config import Config
from mmengine.runner import Runner
cfg = Config.fromfile(sys.argv[1])
cfg.work_dir = sys.argv[2]
cfg.merge_from_dict(json.loads(sys.argv[3]))
Runner.from_cfg(cfg).train()
'''


def mmdet_train_tool() -> str:
    """mmdet's own tools/train.py, as its wheel installs it (what ``mim
    train mmdet CONFIG`` runs)."""
    import mmdet
    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
    assert osp.isfile(path), path
    return path


@pytest.mark.slow
def test_every_entry_point_trains_and_resumes_the_same_run(tmp_path):
    """The FM-KT demo config, which inherits default_runtime_distill.py,
    logs the same losses from tools/train.py, mmdet's tools/train.py and a
    plain Runner.from_cfg(cfg).train(); a plain Runner killed inside an
    epoch and resumed with cfg.resume=True continues exactly."""
    with open(tmp_path / f'{PROBE_MODULE}.py', 'w') as f:
        f.write(PROBE_SOURCE)
    data_root = str(tmp_path / 'digits_det')
    teacher = save_teacher(tmp_path)
    env = tool_env(tmp_path)
    plain = [sys.executable, '-c', PLAIN_RUNNER]

    def config(name, **probe):
        path = method_config(tmp_path, 'fmkt', name, data_root, teacher,
                             **probe)
        cfg = Config.fromfile(path, import_custom_modules=False)
        cfg.log_level = 'INFO'  # SafeTrainingHook's line
        cfg.dump(path)
        return path

    runs = {
        'ours': [sys.executable, 'tools/train.py', config('ours')],
        # (not named 'mmdet': tmp_path is on PYTHONPATH for the probe)
        'by_mmdet': [sys.executable, mmdet_train_tool(), config('by_mmdet'),
                     '--work-dir', str(tmp_path / 'by_mmdet')],
        'plain': plain + [config('plain'), str(tmp_path / 'plain'), '{}'],
    }
    for name, cmd in runs.items():
        out = run(cmd, env).stdout
        assert 'SafeTrainingHook: CheckpointHook saves atomically; ' \
            'EpochBasedTrainLoop resumes inside an epoch; OptimWrapper ' \
            "guarded against NaN/Inf (nonfinite='raise')" in out, name
        assert 'mmkdflow tools:' not in out, name
    reference = records(tmp_path, 'ours')
    assert [r['iter'] for r in reference] == list(range(TOTAL))
    for name in ('by_mmdet', 'plain'):
        assert records(tmp_path, name) == reference, name  # bit for bit

    # killed after iteration 4, the second batch of epoch 2: iter_4.pth
    # was written inside that epoch, after its first batch
    kill_at = 4
    cut = config('cut', kill_after_iter=kill_at)
    killed(plain + [cut, str(tmp_path / 'cut'), '{}'], env)
    assert last_checkpoint(tmp_path / 'cut') == 4
    probe = f'custom_hooks.{probe_index(cut)}.kill_after_iter'
    run(plain + [cut, str(tmp_path / 'cut'),
                 json.dumps({'resume': True, probe: None})], env)
    got = records(tmp_path, 'cut')
    assert [r['iter'] for r in got] == \
        list(range(kill_at + 1)) + list(range(4, TOTAL))
    assert_same_losses(got, {r['iter']: r for r in reference})
