"""Atomic saving: ``save_atomic`` and ``SafeCheckpointHook`` never leave a
half-written checkpoint. (Safe loading and errors on bad checkpoints:
test_checkpoint_loading.py.)"""
import os

import pytest
import torch

from mmkdflow.engine.checkpoint import (CheckpointError, load_checkpoint_file,
                                        save_atomic)


def test_save_atomic_leaves_no_partial_file(tmp_path):
    path = str(tmp_path / 'out.pth')
    save_atomic({'a': torch.ones(2)}, path)
    torch.testing.assert_close(torch.load(path)['a'], torch.ones(2))

    class Exploding:

        def __reduce__(self):
            raise RuntimeError('disk full')

    with pytest.raises(RuntimeError, match='disk full'):
        save_atomic({'a': torch.zeros(2), 'b': Exploding()}, path)
    # the previous file is intact and no temporary file is left behind
    torch.testing.assert_close(torch.load(path)['a'], torch.ones(2))
    assert sorted(os.listdir(tmp_path)) == ['out.pth']


# ------------------------------------- SafeCheckpointHook: atomic saves
TOY_RUNNER = """
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner

import mmkdflow  # noqa: F401


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


def toy_runner(work_dir, hook='mmkdflow.SafeCheckpointHook', max_epochs=1,
               resume_from=None, custom_hooks=None, train_cfg=None,
               **checkpoint):
    \"\"\"A real MMEngine Runner with a one-layer model and 4 samples
    (resumed from ``resume_from`` when given).\"\"\"
    data = [dict(inputs=torch.full((2, ), float(i))) for i in range(4)]
    checkpoint = dict(dict(type=hook, interval=1), **checkpoint)
    return Runner(
        model=ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=data, batch_size=2,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=False)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=train_cfg or dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=checkpoint), custom_hooks=custom_hooks,
        resume=resume_from is not None, load_from=resume_from,
        default_scope='mmengine', log_level='WARNING')
"""
_toy = {}
exec(TOY_RUNNER, _toy)
_toy_runner = _toy['toy_runner']

#: Disk full for real: RLIMIT_FSIZE caps every write of the process at half
#: the size of the first checkpoint (EFBIG), then the hook saves twice.
DISK_FULL_SCRIPT = TOY_RUNNER + """
import json, os, resource, signal, sys
work = sys.argv[1]
hook = dict(mmkdflow='mmkdflow.SafeCheckpointHook',
            mmengine='CheckpointHook')[sys.argv[2]]
runner = toy_runner(work, hook)
runner.train()
first = os.path.join(work, 'epoch_1.pth')
size = os.path.getsize(first)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, hard))
errors = []
checkpoint_hook = [h for h in runner.hooks
                   if 'Checkpoint' in type(h).__name__][0]
for step in (2, 1):
    try:
        checkpoint_hook._save_checkpoint_with_step(
            runner, step, dict(epoch=step, iter=2 * step))
    except OSError as err:
        errors.append(err.errno)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
print(json.dumps(dict(errors=errors, size=size, files={
    f: os.path.getsize(os.path.join(work, f)) for f in os.listdir(work)
    if f.startswith('epoch')})))
"""


def _half_written_then_fail(monkeypatch):
    """Make the next checkpoint write put half of its bytes on disk, then
    fail as a full disk would."""
    from mmengine.fileio.backends.local_backend import LocalBackend

    def put(self, obj, filepath):
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(LocalBackend, 'put', put)


def test_runner_checkpoints_are_never_half_written(tmp_path, monkeypatch):
    runner = _toy_runner(tmp_path)
    runner.train()
    first = tmp_path / 'epoch_1.pth'
    saved = first.read_bytes()
    assert oct(first.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert (tmp_path / 'last_checkpoint').read_text() == str(first)

    # a new checkpoint that fails midway: nothing under its name, the
    # previous one and last_checkpoint untouched
    runner.train_loop._max_epochs = 2
    _half_written_then_fail(monkeypatch)
    with pytest.raises(OSError, match='No space left'):
        runner.train()
    assert not (tmp_path / 'epoch_2.pth').exists()
    assert (tmp_path / 'last_checkpoint').read_text() == str(first)
    assert first.read_bytes() == saved
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]
    monkeypatch.undo()
    assert load_checkpoint_file(str(first))['meta']['epoch'] == 1


@pytest.mark.parametrize('hook', ['mmkdflow', 'mmengine'])
def test_disk_full_mid_write(tmp_path, hook):
    """A real short write (file size limit): with SafeCheckpointHook the
    new checkpoint is absent and the overwritten one intact; MMEngine's own
    CheckpointHook (the control) leaves both half-written."""
    import errno
    import json
    import subprocess
    import sys
    script = tmp_path / 'disk_full.py'
    script.write_text(DISK_FULL_SCRIPT)
    work = tmp_path / 'work'
    out = subprocess.run(
        [sys.executable, str(script), str(work), hook], check=True,
        capture_output=True, text=True,
        env=dict(os.environ, OMP_NUM_THREADS='1')).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result['errors'] == [errno.EFBIG, errno.EFBIG]
    files, size = result['files'], result['size']
    if hook == 'mmkdflow':
        assert files == {'epoch_1.pth': size}
        assert load_checkpoint_file(str(work / 'epoch_1.pth'))
    else:
        assert files == {'epoch_1.pth': size // 2, 'epoch_2.pth': size // 2}
        with pytest.raises(CheckpointError, match='unreadable'):
            load_checkpoint_file(str(work / 'epoch_2.pth'))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_importing_mmkdflow_leaves_mmengine_saving_alone():
    """Atomic saving is the hook's job, not an import side effect."""
    from mmengine.runner import checkpoint as mmengine_checkpoint
    from mmengine.runner import runner as mmengine_runner
    assert mmengine_runner.save_checkpoint is \
        mmengine_checkpoint.save_checkpoint
    assert mmengine_checkpoint.save_checkpoint.__module__ == \
        'mmengine.runner.checkpoint'

