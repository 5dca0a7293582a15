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

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from test_checkpoint import TOY_RUNNER

from mmkdflow.engine.hooks import find_resume_checkpoint
from mmkdflow.engine.resume_setup import apply_resume, use_safe_checkpointing
from mmkdflow.utils import CheckpointError
from mmkdflow.utils.atomic_files import (remove_stale_temporaries,
                                         stale_temporaries, temporary_name)

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
from mmkdflow.engine.hooks import find_resume_checkpoint
work = sys.argv[1]
start = find_resume_checkpoint(work)
runner = toy_runner(work, max_epochs=3, max_keep_ckpts=1, resume_from=start)
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
    assert torch.load(str(work / 'epoch_1.pth'))['meta']['epoch'] == 1

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


def test_resume_option_picks_the_fallback_and_checks_files(tmp_path):
    cfg = Config(dict(work_dir=str(tmp_path)))
    _save(tmp_path / 'iter_20.pth', 0)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_40.pth'))
    apply_resume(cfg, 'auto')
    assert cfg.resume is True and cfg.load_from == str(tmp_path /
                                                       'iter_20.pth')
    # an explicit path is checked before MMEngine sees it
    (tmp_path / 'cut.pth').write_bytes(b'\x80\x02junk')
    with pytest.raises(CheckpointError, match='resume checkpoint'):
        apply_resume(Config(dict(work_dir=str(tmp_path))),
                     str(tmp_path / 'cut.pth'))
    cfg = Config(dict(work_dir=str(tmp_path / 'new')))
    apply_resume(cfg, 'auto')
    assert cfg.resume is False and cfg.load_from is None
    cfg = Config(dict(work_dir=str(tmp_path), load_from=str(tmp_path)))
    with pytest.raises(CheckpointError, match='load_from .* is a directory'):
        apply_resume(cfg, None)


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


def test_use_safe_checkpointing_swaps_mmengine_types_only():
    cfg = Config(dict(
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2,
                                           max_keep_ckpts=1)),
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=3)))
    use_safe_checkpointing(cfg)
    assert cfg.default_hooks.checkpoint == dict(
        type='mmkdflow.SafeCheckpointHook', interval=2, max_keep_ckpts=1)
    assert cfg.train_cfg == dict(
        type='mmkdflow.ResumableEpochBasedTrainLoop', max_epochs=3)
    cfg = Config(dict(train_cfg=dict(by_epoch=True, max_epochs=3)))
    use_safe_checkpointing(cfg)
    assert cfg.train_cfg.type == 'mmkdflow.ResumableEpochBasedTrainLoop'
    cfg = Config(dict(train_cfg=dict(by_epoch=False, max_iters=3)))
    use_safe_checkpointing(cfg)
    assert cfg.train_cfg == dict(
        type='mmkdflow.ResumableIterBasedTrainLoop', max_iters=3)
    cfg = Config(dict(
        default_hooks=dict(checkpoint=dict(type='MyHook')),
        train_cfg=dict(type='MyLoop', max_iters=5)))
    use_safe_checkpointing(cfg)
    assert cfg.default_hooks.checkpoint.type == 'MyHook'
    assert cfg.train_cfg.type == 'MyLoop'


def test_zero_counts_are_refused_when_the_runner_is_built(tmp_path):
    from mmengine.registry import HOOKS
    with pytest.raises(ValueError, match='interval=0 would never save'):
        HOOKS.build(dict(type='mmkdflow.SafeCheckpointHook', interval=0))
    with pytest.raises(ValueError, match='max_keep_ckpts=0 is ambiguous'):
        HOOKS.build(dict(type='mmkdflow.SafeCheckpointHook',
                         max_keep_ckpts=0))
    from test_checkpoint import _toy
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


def test_every_shipped_training_config_gets_safe_checkpointing():
    """What tools/train.py does to each config under configs/ (demo and
    paper rows): SafeCheckpointHook with the config's own arguments
    (max_keep_ckpts included), a resumable loop, and the non-finite guard
    (on by default, as it was on the distiller before it became an optim
    wrapper)."""
    from mmkdflow.engine import apply_nonfinite_guard
    import glob

    from conftest import CONFIGS
    paths = sorted(p for p in glob.glob(f'{CONFIGS}/**/*.py', recursive=True)
                   if f'{os.sep}_base_{os.sep}' not in p)
    assert len(paths) > 30
    for path in paths:
        cfg = Config.fromfile(path)
        if cfg.get('train_cfg') is None:
            continue
        before = dict(cfg.default_hooks.checkpoint)
        use_safe_checkpointing(cfg)
        after = dict(cfg.default_hooks.checkpoint)
        assert after.pop('type') == 'mmkdflow.SafeCheckpointHook', path
        before.pop('type')
        assert after == before, path
        assert cfg.train_cfg.type in (
            'mmkdflow.ResumableEpochBasedTrainLoop',
            'mmkdflow.ResumableIterBasedTrainLoop'), (path, cfg.train_cfg)
        apply_nonfinite_guard(cfg)
        assert cfg.optim_wrapper.type.startswith(
            'mmkdflow.NonFiniteGuard'), (path, cfg.optim_wrapper.type)
        assert cfg.optim_wrapper.policy == 'raise', path
