"""Checkpoint rotation never leaves a run without a checkpoint; stale
temporaries are removed; ``--resume`` falls back to the newest complete
checkpoint."""
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from test_checkpoint import TOY_RUNNER

from mmkdflow.engine.checkpoint import (CheckpointError,
                                        find_resume_checkpoint,
                                        load_checkpoint_file)
from mmkdflow.engine.checkpoint.atomic_files import (remove_stale_temporaries,
                                                     stale_temporaries,
                                                     temporary_name)

#: Train 3 epochs with ``max_keep_ckpts=1``; SIGKILL halfway through
#: writing the epoch-2 checkpoint (half of its bytes are on disk).
KILL_IN_SAVE = TOY_RUNNER + """
import os, signal, sys
from mmengine.fileio.backends.local_backend import LocalBackend
work, hook = sys.argv[1], sys.argv[2]
real_put = LocalBackend.put


def put(self, obj, filepath):
    name = os.path.basename(filepath)
    if name == 'epoch_2.pth' or name.startswith('.epoch_2.pth.'):
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
            f.flush()
            os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    real_put(self, obj, filepath)


LocalBackend.put = put
toy_runner(work, hook, max_epochs=3, max_keep_ckpts=1).train()
"""

RESUME = TOY_RUNNER + """
import json, sys
from mmkdflow.engine.checkpoint import find_resume_checkpoint
work = sys.argv[1]
start = find_resume_checkpoint(work)
runner = toy_runner(work, max_epochs=3, max_keep_ckpts=1, resume_from=start,
                    custom_hooks=[dict(type='mmkdflow.SafeTrainingHook')])
runner.train()
print(json.dumps(dict(start=start, iter=runner.iter, epoch=runner.epoch)))
"""


def _run(script: str, *args: str, expect_kill: bool = False) -> str:
    proc = subprocess.run(
        [sys.executable, '-c', script, *args], capture_output=True, text=True,
        env=dict(os.environ, OMP_NUM_THREADS='1'), timeout=300)
    if expect_kill:
        assert proc.returncode == -9, proc.stderr[-3000:]
    else:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_kill_during_save_keeps_the_previous_checkpoint(tmp_path):
    work = tmp_path / 'work'
    _run(KILL_IN_SAVE, str(work), 'mmkdflow.SafeCheckpointHook',
         expect_kill=True)
    names = sorted(os.listdir(work))
    assert 'epoch_1.pth' in names and 'epoch_2.pth' not in names
    temporaries = [n for n in names if n.endswith('.tmp')]
    assert len(temporaries) == 1 and temporaries[0].startswith('.epoch_2.pth.')
    assert (work / 'last_checkpoint').read_text() == str(work / 'epoch_1.pth')
    assert load_checkpoint_file(
        str(work / 'epoch_1.pth'))['meta']['epoch'] == 1

    out = json.loads(_run(RESUME, str(work)).strip().splitlines()[-1])
    assert out == dict(start=str(work / 'epoch_1.pth'), iter=6, epoch=3)
    # the stale temporary is gone; max_keep_ckpts=1 keeps only the last
    assert sorted(f for f in os.listdir(work) if f.endswith(
        ('.pth', '.tmp', 'last_checkpoint'))) == ['epoch_3.pth',
                                                  'last_checkpoint']
    assert (work / 'last_checkpoint').read_text() == str(work / 'epoch_3.pth')


def test_mmengine_hook_loses_everything_in_the_same_kill(tmp_path):
    """The control: MMEngine's CheckpointHook deletes epoch_1.pth before
    writing epoch_2.pth, so the same kill leaves no usable checkpoint; the
    resume fallback says so and starts from scratch instead of failing."""
    work = tmp_path / 'work'
    _run(KILL_IN_SAVE, str(work), 'CheckpointHook', expect_kill=True)
    assert not (work / 'epoch_1.pth').exists()
    assert (work / 'epoch_2.pth').stat().st_size > 0  # half written
    assert (work / 'last_checkpoint').read_text() == str(work / 'epoch_1.pth')
    assert find_resume_checkpoint(str(work)) is None


def _save(path, epoch: int) -> None:
    torch.save({'meta': dict(epoch=epoch), 'state_dict': {}}, str(path))


class Messages(logging.Handler):
    """Collects what MMEngine's current logger prints."""

    def __enter__(self):
        self.lines = []
        self.logger = MMLogger.get_current_instance()
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_resume_falls_back_to_the_newest_complete_checkpoint(tmp_path):
    for epoch in (1, 2, 3):
        _save(tmp_path / f'epoch_{epoch}.pth', epoch)
        time.sleep(0.01)
    _save(tmp_path / 'epoch_3_student.pth', 3)  # not resumable
    _save(tmp_path / 'best_coco_bbox_mAP_epoch_1.pth', 1)
    record = tmp_path / 'last_checkpoint'

    record.write_text(str(tmp_path / 'epoch_3.pth'))
    assert find_resume_checkpoint(str(tmp_path)) == str(tmp_path /
                                                        'epoch_3.pth')
    # the named file is truncated: the newest complete one is taken
    data = (tmp_path / 'epoch_3.pth').read_bytes()
    (tmp_path / 'epoch_3.pth').write_bytes(data[:len(data) // 2])
    with Messages() as messages:
        assert find_resume_checkpoint(str(tmp_path)) == str(tmp_path /
                                                            'epoch_2.pth')
    log = '\n'.join(messages.lines)
    assert f'resuming from {tmp_path / "epoch_2.pth"}, the newest complete ' \
        f"checkpoint of the work dir, because the checkpoint in " \
        f"last_checkpoint '{tmp_path / 'epoch_3.pth'}'" in log
    assert 'is truncated or not a torch checkpoint' in log
    # the named file is gone
    (tmp_path / 'epoch_3.pth').unlink()
    record.write_text(str(tmp_path / 'epoch_9.pth'))
    assert find_resume_checkpoint(str(tmp_path)) == str(tmp_path /
                                                        'epoch_2.pth')
    # no last_checkpoint at all (MMEngine would start from scratch)
    record.unlink()
    assert find_resume_checkpoint(str(tmp_path)) == str(tmp_path /
                                                        'epoch_2.pth')
    assert find_resume_checkpoint(str(tmp_path / 'empty')) is None


def test_a_copied_work_dir_resumes_from_its_own_files(tmp_path):
    """A work dir copied at iteration 20 keeps a last_checkpoint naming the
    original folder, which has trained on to iteration 50: the copy
    resumes from its own iter_20.pth, never from the original's files."""
    original, copy = tmp_path / 'original', tmp_path / 'copy'
    original.mkdir()
    for it in (10, 20):
        _save(original / f'iter_{it}.pth', it)
        time.sleep(0.01)
    (original / 'last_checkpoint').write_text(str(original / 'iter_20.pth'))
    shutil.copytree(original, copy)
    time.sleep(0.01)
    _save(original / 'iter_50.pth', 50)  # the original trains on
    (original / 'last_checkpoint').write_text(str(original / 'iter_50.pth'))
    with Messages() as messages:
        assert find_resume_checkpoint(str(copy)) == str(copy / 'iter_20.pth')
    log = '\n'.join(messages.lines)
    assert "the work dir's own copy" in log and str(original) in log
    # the original's named file is gone too: still the copy's own newest
    (copy / 'iter_20.pth').unlink()
    (original / 'iter_20.pth').unlink()
    assert find_resume_checkpoint(str(copy)) == str(copy / 'iter_10.pth')
    # a work dir without checkpoints (an out_dir run) takes the named
    # folder, and the log names it
    for name in os.listdir(copy):
        if name.endswith('.pth'):
            os.remove(copy / name)
    with Messages() as messages:
        assert find_resume_checkpoint(str(copy)) == \
            str(original / 'iter_50.pth')
    assert f'in {original}: the work dir {copy} holds no complete ' \
        f'checkpoint' in '\n'.join(messages.lines)


def _runner_to_load(work_dir, resume=True, load_from=None):
    """What SafeTrainingHook reads of a runner to choose its checkpoint."""
    return SimpleNamespace(cfg=Config(dict(resume=resume)),
                           _load_from=load_from, work_dir=str(work_dir),
                           logger=MMLogger.get_current_instance())


def test_safe_training_hook_picks_the_fallback_and_checks_files(tmp_path):
    from mmkdflow.engine import SafeTrainingHook
    hook = SafeTrainingHook()
    _save(tmp_path / 'iter_20.pth', 0)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_40.pth'))
    runner = _runner_to_load(tmp_path)
    hook._choose_checkpoint(runner)
    assert runner._load_from == str(tmp_path / 'iter_20.pth')
    # an explicit path is checked before MMEngine sees it
    (tmp_path / 'cut.pth').write_bytes(b'\x80\x02junk')
    with pytest.raises(CheckpointError, match='resume checkpoint'):
        hook._choose_checkpoint(
            _runner_to_load(tmp_path, load_from=str(tmp_path / 'cut.pth')))
    runner = _runner_to_load(tmp_path / 'new')
    hook._choose_checkpoint(runner)
    assert runner._load_from is None  # MMEngine then starts from scratch
    with pytest.raises(CheckpointError, match='load_from .* is a directory'):
        hook._choose_checkpoint(
            _runner_to_load(tmp_path, resume=False, load_from=str(tmp_path)))


def test_stale_temporaries_of_dead_writers_only(tmp_path):
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    target = str(tmp_path / 'epoch_2.pth')
    ours = temporary_name(target)  # this (live) process
    stale = ours.replace(f'.{os.getpid()}.', f'.{dead.pid}.')
    alive = ours.replace(f'.{os.getpid()}.', f'.{os.getppid()}.')
    for path in (ours, stale, alive):
        open(path, 'wb').close()
    (tmp_path / 'notes.tmp').write_text('not ours')
    assert stale_temporaries(str(tmp_path)) == [stale]
    assert remove_stale_temporaries(str(tmp_path)) == [stale]
    assert sorted(os.listdir(tmp_path)) == sorted(
        os.path.basename(p) for p in (ours, alive, 'notes.tmp'))


def test_safe_training_hook_swaps_mmengine_types_only(tmp_path):
    """A real Runner built from MMEngine's own types trains with the safe
    checkpoint hook, the resumable loop and the guarded optim wrapper; its
    own types, or the hook's switches turned off, are left alone."""
    from mmengine.hooks import CheckpointHook
    from mmengine.optim import OptimWrapper
    from mmengine.runner import EpochBasedTrainLoop
    from mmengine.runner.checkpoint import CheckpointLoader

    from mmkdflow.engine import (NonFiniteGuardOptimWrapper,
                                 ResumableEpochBasedTrainLoop,
                                 ResumableIterBasedTrainLoop,
                                 SafeCheckpointHook)
    from test_checkpoint import _toy
    schemes = dict(CheckpointLoader._schemes)
    hooks = [dict(type='mmkdflow.SafeTrainingHook')]
    runner = _toy['toy_runner'](tmp_path / 'a', 'CheckpointHook',
                                custom_hooks=hooks)
    runner.train()
    checkpoint = [h for h in runner.hooks if isinstance(h, CheckpointHook)]
    assert [type(h) for h in checkpoint] == [SafeCheckpointHook]
    assert type(runner.train_loop) is ResumableEpochBasedTrainLoop
    assert type(runner.optim_wrapper) is NonFiniteGuardOptimWrapper
    assert runner.optim_wrapper.policy == 'raise'
    assert dict(CheckpointLoader._schemes) == schemes  # put back
    assert (tmp_path / 'a' / 'epoch_1.pth').is_file()

    runner = _toy['toy_runner'](
        tmp_path / 'b', 'CheckpointHook', custom_hooks=hooks,
        train_cfg=dict(by_epoch=False, max_iters=2))
    runner.train()
    assert type(runner.train_loop) is ResumableIterBasedTrainLoop

    off = [dict(type='mmkdflow.SafeTrainingHook', nonfinite='off',
                atomic_checkpoints=False, resumable_loop=False)]
    runner = _toy['toy_runner'](tmp_path / 'c', 'CheckpointHook',
                                custom_hooks=off)
    runner.train()
    assert type(runner.train_loop) is EpochBasedTrainLoop
    assert type(runner.optim_wrapper) is OptimWrapper
    assert any(type(h) is CheckpointHook for h in runner.hooks)
    with pytest.raises(ValueError, match="nonfinite must be 'raise'"):
        _toy['toy_runner'](tmp_path / 'd', custom_hooks=[dict(
            type='mmkdflow.SafeTrainingHook', nonfinite='ignore')])


def test_zero_counts_are_refused_when_the_runner_is_built(tmp_path):
    from mmengine.registry import HOOKS
    with pytest.raises(ValueError, match='interval=0 would never save'):
        HOOKS.build(dict(type='mmkdflow.SafeCheckpointHook', interval=0))
    with pytest.raises(ValueError, match='max_keep_ckpts=0 is ambiguous'):
        HOOKS.build(dict(type='mmkdflow.SafeCheckpointHook',
                         max_keep_ckpts=0))
    from test_checkpoint import _toy

    # MMEngine's own hook, made safe by SafeTrainingHook: the same checks
    hooks = [dict(type='mmkdflow.SafeTrainingHook')]
    for setting, message in ((dict(interval=0), 'interval=0 would never'),
                             (dict(max_keep_ckpts=0), 'max_keep_ckpts=0')):
        runner = _toy['toy_runner'](tmp_path / 'swap', 'CheckpointHook',
                                    custom_hooks=hooks, **setting)
        with pytest.raises(ValueError, match=message):
            runner.train()
        assert not list((tmp_path / 'swap').glob('*.pth'))
    for train_cfg, message in (
            (dict(type='mmkdflow.ResumableEpochBasedTrainLoop',
                  max_epochs=0), 'max_epochs must be an integer >= 1'),
            (dict(type='mmkdflow.ResumableEpochBasedTrainLoop',
                  max_epochs=2, val_interval=0),
             'val_interval must be .*set val_cfg=None'),
            (dict(type='mmkdflow.ResumableIterBasedTrainLoop',
                  max_iters=0), 'max_iters must be an integer >= 1')):
        runner = _toy['toy_runner'](tmp_path / 'work')
        runner._train_loop = train_cfg
        with pytest.raises(ValueError, match=message):
            runner.train_loop


def test_every_shipped_training_config_has_the_safe_runtime():
    """Each config under configs/ (demo and paper rows) inherits
    _base_/default_runtime_distill.py: SafeTrainingHook (nonfinite='raise')
    and ResumeStateHook come first in custom_hooks, and the checkpoint
    hook, loop and optim wrapper are types the hook makes safe."""
    import glob

    from utils import CONFIGS
    paths = sorted(p for p in glob.glob(f'{CONFIGS}/**/*.py', recursive=True)
                   if f'{os.sep}_base_{os.sep}' not in p)
    assert len(paths) > 30
    for path in paths:
        cfg = Config.fromfile(path)
        if cfg.get('train_cfg') is None:
            continue
        assert cfg.custom_hooks[:2] == [
            dict(type='mmkdflow.SafeTrainingHook', nonfinite='raise'),
            dict(type='mmkdflow.ResumeStateHook')], path
        assert cfg.default_hooks.checkpoint.type == 'CheckpointHook', path
        loop = cfg.train_cfg.get('type', 'EpochBasedTrainLoop' if
                                 cfg.train_cfg.get('by_epoch') else None)
        assert loop in ('EpochBasedTrainLoop', 'IterBasedTrainLoop'), path
        assert cfg.optim_wrapper.get('type', 'OptimWrapper') in (
            'OptimWrapper', 'AmpOptimWrapper'), path


def test_a_user_config_reaches_the_runtime_as_mmkdflow_base(tmp_path):
    """``mmkdflow::_base_/default_runtime_distill.py`` beside a full mmdet
    config (as mmdet::_base_/default_runtime.py is reached): no key
    collides, and custom_hooks of its own keep the runtime's first."""
    path = tmp_path / 'mine.py'
    path.write_text(
        "_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py',\n"
        "          'mmkdflow::_base_/default_runtime_distill.py']\n"
        "custom_hooks = [*_base_.safe_training_hooks,\n"
        "                dict(type='mmkdflow.StudentCheckpointHook')]\n")
    cfg = Config.fromfile(str(path))
    assert [h['type'] for h in cfg.custom_hooks] == [
        'mmkdflow.SafeTrainingHook', 'mmkdflow.ResumeStateHook',
        'mmkdflow.StudentCheckpointHook']
    assert cfg.model.type == 'RetinaNet'
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop'
