"""Safe loading on every supported torch: torch >= 2.4 extends its own
weights-only allow-list, torch < 2.4 (the floor) reads through
mmkdflow's restricted unpickler. Both paths run here on any torch (the
floor path forced), and on the floor the default path is the restricted
one."""
import collections
import os

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from mmkdflow.engine.checkpoint import loading as checkpoint_loading
from mmkdflow.engine.checkpoint import safe_globals
from mmkdflow.engine.checkpoint.loading import (CheckpointError,
                                                check_checkpoint_file,
                                                load_checkpoint_file)


class Payload:
    """An object whose unpickling runs a command."""

    def __reduce__(self):
        return (os.system, ('echo payload-ran',))


class GetattrPayload:
    """``getattr`` of a HistoryBuffer attribute that is not one of its
    statistics methods, through the allow-listed ``getattr``."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


#: The loader paths this torch has (torch < 2.4 has only the restricted one).
LOADER_PATHS = (['torch_allow_list'] if safe_globals.has_add_safe_globals()
                else []) + ['restricted_unpickler']


@pytest.fixture(params=LOADER_PATHS)
def loader_path(request, monkeypatch):
    if request.param == 'restricted_unpickler':
        monkeypatch.setattr(checkpoint_loading, 'has_add_safe_globals',
                            lambda: False)
        monkeypatch.setattr(safe_globals, 'has_add_safe_globals',
                            lambda: False)
        safe_globals.allow_mmengine_types()  # fills EXTRA_SAFE_GLOBALS
    return request.param


@pytest.mark.parametrize('zip_format', [True, False])
@pytest.mark.parametrize('loader', [load_checkpoint_file,
                                    check_checkpoint_file])
def test_pickled_code_is_refused(tmp_path, capfd, loader_path, loader,
                                 zip_format):
    path = str(tmp_path / 'payload.pth')
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': Payload()}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError) as info:
        loader(path, 'teacher_ckpt')
    assert 'refused by safe loading' in str(info.value)
    assert 'posix.system' in str(info.value)
    assert 'weights_only' not in str(info.value)
    assert 'payload-ran' not in capfd.readouterr().out


def test_mmengine_message_hub_and_numpy_load(tmp_path, loader_path):
    hub = MessageHub('restricted-unpickler-test')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', 0.5)
    hub.update_info('best', np.float64(2.0))
    path = str(tmp_path / 'ok.pth')
    torch.save({'state_dict': {'w': torch.arange(3.)},
                'message_hub': hub.state_dict(),
                'array': np.arange(4, dtype=np.float32),
                'step': np.int64(7),
                # what mmdet datasets and MMEngine put into a run's meta
                'counts': collections.Counter('aab'), 'ids': {1, 2},
                'raw': bytearray(b'x'), 'z': 1 + 2j}, path)
    check_checkpoint_file(path)
    loaded = load_checkpoint_file(path)
    assert loaded['counts'] == collections.Counter(a=2, b=1)
    assert (loaded['ids'], loaded['raw'], loaded['z']) == (
        {1, 2}, bytearray(b'x'), 1 + 2j)
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(1.0)
    assert buffer.current() == 0.5
    assert loaded['message_hub']['runtime_info']['best'] == 2.0
    assert loaded['array'].dtype == np.float32
    np.testing.assert_array_equal(loaded['array'], np.arange(4))
    assert loaded['step'] == 7
    torch.testing.assert_close(loaded['state_dict']['w'], torch.arange(3.))


def test_restricted_getattr_only_for_history_buffer(tmp_path, loader_path):
    """``getattr`` is allowed for HistoryBuffer's statistics alone."""
    path = str(tmp_path / 'getattr.pth')
    torch.save({'x': GetattrPayload()}, path)
    with pytest.raises(CheckpointError, match='refused|unreadable'):
        load_checkpoint_file(path)


def test_floor_default_is_the_restricted_unpickler():
    """On torch < 2.4 the loader must not fall back to plain pickle."""
    if safe_globals.has_add_safe_globals():
        assert hasattr(torch.serialization, 'add_safe_globals')
    else:
        with safe_globals.mmengine_types_allowed():  # fills it
            assert safe_globals.EXTRA_SAFE_GLOBALS
        assert 'mmengine.logging.history_buffer.HistoryBuffer' in \
            safe_globals.EXTRA_SAFE_GLOBALS


def test_mmengine_reads_checkpoints_through_the_safe_loader(
        tmp_path, capfd, loader_path, request):
    """MMEngine's own reads (``load_from``, resume, ``load_checkpoint``)
    of local files, while SafeTrainingHook has mmkdflow's loader in place:
    refused or loaded exactly as mmkdflow's own, with MMEngine's
    ``map_location`` honoured."""
    from mmengine.runner.checkpoint import CheckpointLoader

    from mmkdflow.engine.checkpoint import safe_mmengine_loaders
    loaders = safe_mmengine_loaders()
    loaders.install()
    request.addfinalizer(loaders.restore)
    hostile = str(tmp_path / 'payload.pth')
    torch.save({'state_dict': {}, 'meta': Payload()}, hostile)
    with pytest.raises(CheckpointError, match='refused by safe loading'):
        CheckpointLoader.load_checkpoint(hostile, map_location='cpu')
    assert 'payload-ran' not in capfd.readouterr().out
    hub = MessageHub('mmengine-loader-test')
    hub.update_scalar('train/loss', 2.0)
    good = str(tmp_path / 'good.pth')
    torch.save({'state_dict': {'w': torch.arange(3.)},
                'message_hub': hub.state_dict()}, good)
    moved = []

    def to_cpu(storage, location):
        moved.append(location)
        return storage

    loaded = CheckpointLoader.load_checkpoint(good, map_location=to_cpu)
    assert moved and loaded['message_hub']['log_scalars'][
        'train/loss'].mean() == 2.0
    with pytest.raises(FileNotFoundError, match='does not exist'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'none.pth'))
