"""Safe loading of checkpoints, and clear errors on bad ones."""
import os
import pickle

import pytest
import torch
from utils import tiny_retinanet
from mmengine.logging import HistoryBuffer, MessageHub

from mmkdflow import compat
from mmkdflow.models import Distiller
from mmkdflow.engine.checkpoint import CheckpointError, load_checkpoint_file
from mmkdflow.engine.checkpoint.safe_globals import history_buffer_getattr

FPN = dict(student='neck', teacher='neck', index=(0, 1, 2, 3, 4),
           loss=dict(type='MSELoss'))


class Payload:
    """Would run a command on unpickling if safe loading let it through."""

    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null', ))


def _build(ckpt):
    model = tiny_retinanet(8, 16)
    return Distiller(student=model, teacher=model, teacher_ckpt=ckpt,
                            distill_points=dict(fpn=FPN))


def test_pickled_object_in_teacher_checkpoint_is_refused(tmp_path):
    path = str(tmp_path / 'hostile.pth')
    torch.save({'state_dict': {}, 'payload': Payload()}, path)
    with pytest.raises(CheckpointError,
                       match=r'refused by safe loading.*posix\.system|'
                       r'refused by safe loading.*os\.system'):
        _build(path)


def test_empty_and_truncated_checkpoints(tmp_path, saved_teacher):
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointError, match='is empty'):
        _build(str(empty))
    good, _ = saved_teacher(tiny_retinanet(8, 16))
    data = open(good, 'rb').read()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='unreadable'):
        _build(str(truncated))
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint')
    with pytest.raises(CheckpointError, match='unreadable'):
        _build(str(text))


def test_non_dict_checkpoint(tmp_path):
    path = str(tmp_path / 'tensor.pth')
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match='not a dict of weights'):
        _build(path)


def test_checkpoint_with_missing_and_extra_keys(tmp_path, saved_teacher):
    good, state = saved_teacher(tiny_retinanet(8, 16))
    del state['neck.fpn_convs.0.conv.weight']
    state['head.extra'] = torch.zeros(1)
    path = str(tmp_path / 'partial.pth')
    torch.save({'state_dict': state}, path)
    with pytest.raises(
            CheckpointError,
            match=r"1 missing keys: neck\.fpn_convs\.0\.conv\.weight; "
            r'1 unexpected keys: head\.extra'):
        _build(path)


def test_module_prefix_and_bare_state_dicts_load(tmp_path, saved_teacher):
    _, state = saved_teacher(tiny_retinanet(8, 16))
    path = str(tmp_path / 'ddp.pth')
    torch.save({f'module.{k}': v for k, v in state.items()}, path)
    model = _build(path)
    torch.testing.assert_close(model.teacher.neck.fpn_convs[0].conv.weight,
                               state['neck.fpn_convs.0.conv.weight'])


def test_mmengine_message_hub_loads_with_safe_loading(tmp_path):
    hub = MessageHub.get_instance('test_safe_loading')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', 0.5)
    hub.update_info('iter', 3)
    path = str(tmp_path / 'hub.pth')
    torch.save({'message_hub': hub.state_dict()}, path)
    loaded = load_checkpoint_file(path)['message_hub']
    buffer = loaded['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(1.0)
    assert buffer.statistics('max') == pytest.approx(1.5)


def test_restricted_getattr_refuses_anything_else():
    assert history_buffer_getattr(HistoryBuffer, 'min') is HistoryBuffer.min
    with pytest.raises(pickle.UnpicklingError, match='refuses getattr'):
        history_buffer_getattr(os, 'system')
    with pytest.raises(pickle.UnpicklingError, match='refuses getattr'):
        history_buffer_getattr(HistoryBuffer, '__init__')


IMPORT_SIDE_EFFECTS = """
import json
import torch
from mmengine.runner.checkpoint import CheckpointLoader


def state():
    schemes = {k: f'{v.__module__}.{v.__qualname__}'
               for k, v in CheckpointLoader._schemes.items()}
    get = getattr(torch.serialization, 'get_safe_globals', lambda: [])
    return dict(schemes=schemes, safe_globals=[str(g) for g in get()])


before = state()
import mmkdflow  # noqa: E402,F401
print(json.dumps(dict(before=before, after=state())))
"""


def test_import_leaves_mmengine_and_torch_loading_alone():
    """``import mmkdflow`` registers modules only: MMEngine's checkpoint
    loaders and torch's safe-loading allow-list are the same after it."""
    import json
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, '-c', IMPORT_SIDE_EFFECTS],
                          capture_output=True, text=True, check=True)
    states = json.loads(proc.stdout.strip().splitlines()[-1])
    assert states['after'] == states['before']
    assert states['before']['schemes'][''].startswith('mmengine.')


def test_safe_loading_stays_on_globally(tmp_path):
    """After importing mmkdflow, torch's default safe loading (torch >=
    2.6) still refuses code, and with ``weights_only=True`` it refuses on
    every supported torch."""
    path = str(tmp_path / 'hostile.pth')
    torch.save({'payload': Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    if compat.torch_at_least('2.6.0'):
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path)  # torch's default after importing mmkdflow



def test_checkpoint_file_check_before_resume_or_test(tmp_path):
    from mmkdflow.engine.checkpoint import check_checkpoint_file
    good = str(tmp_path / 'good.pth')
    torch.save({'state_dict': {'w': torch.ones(3)}}, good)
    check_checkpoint_file(good)
    legacy = str(tmp_path / 'legacy.pth')
    torch.save({'w': torch.ones(3)}, legacy,
               _use_new_zipfile_serialization=False)
    check_checkpoint_file(legacy)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        check_checkpoint_file(str(tmp_path / 'nope.pth'), 'resume checkpoint')
    (tmp_path / 'empty.pth').write_bytes(b'')
    with pytest.raises(CheckpointError, match=r'empty\.pth.*is empty'):
        check_checkpoint_file(str(tmp_path / 'empty.pth'))
    data = open(good, 'rb').read()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) - 40])
    with pytest.raises(CheckpointError, match='truncated or not a torch'):
        check_checkpoint_file(str(tmp_path / 'cut.pth'))
    (tmp_path / 'notes.pth').write_text('lr: 0.1')
    with pytest.raises(CheckpointError, match='truncated or not a torch'):
        check_checkpoint_file(str(tmp_path / 'notes.pth'))


def test_home_paths_are_expanded_as_mmengine_does(tmp_path, monkeypatch,
                                                  saved_teacher):
    """``~`` in teacher_ckpt, ``--resume PATH`` and a checked load_from
    names the user's home, as in MMEngine's own local loader."""
    from mmengine.config import Config

    from mmkdflow.engine.resume_setup import apply_resume
    from mmkdflow.engine.checkpoint import check_checkpoint_file
    home = tmp_path / 'home'
    home.mkdir()
    _, state = saved_teacher(tiny_retinanet(8, 16))
    torch.save({'state_dict': state}, str(home / 'teacher.pth'))
    monkeypatch.setenv('HOME', str(home))
    model = _build('~/teacher.pth')
    torch.testing.assert_close(model.teacher.neck.fpn_convs[0].conv.weight,
                               state['neck.fpn_convs.0.conv.weight'])
    check_checkpoint_file('~/teacher.pth', 'load_from')
    cfg = Config(dict(work_dir=str(tmp_path / 'work')))
    apply_resume(cfg, '~/teacher.pth')
    assert cfg.load_from == str(home / 'teacher.pth') and cfg.resume
    with pytest.raises(FileNotFoundError,
                       match=f"'{home / 'missing.pth'}' does not exist"):
        load_checkpoint_file('~/missing.pth', 'teacher_ckpt')
