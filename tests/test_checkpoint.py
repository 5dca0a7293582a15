"""Safe loading, clear errors on bad checkpoints, atomic saving."""
import os
import pickle

import pytest
import torch
from conftest import tiny_retinanet
from mmengine.logging import HistoryBuffer, MessageHub

from mmkdflow.models import OfflineDistiller
from mmkdflow.utils import (CheckpointError, load_checkpoint_file,
                            save_atomic)
from mmkdflow.utils.checkpoint import history_buffer_getattr

FPN = dict(student='neck', teacher='neck', index=(0, 1, 2, 3, 4),
           loss=dict(type='MSELoss'))


class Payload:
    """Would run a command on unpickling if safe loading let it through."""

    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null', ))


def _build(ckpt):
    model = tiny_retinanet(8, 16)
    return OfflineDistiller(student=model, teacher=model, teacher_ckpt=ckpt,
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


def test_safe_loading_stays_on_globally(tmp_path):
    path = str(tmp_path / 'hostile.pth')
    torch.save({'payload': Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # torch's default after importing mmkdflow


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
