"""Checkpoints travel between numpy 1.x and numpy 2.x environments.

The two committed fixtures are real MMEngine training checkpoints, one
written at the floor of the range (torch 2.1.2, numpy 1.26) and one at its
top (torch 2.13, numpy 2.x), by ``python tests/utils/portable_checkpoint.py``.
This module runs in both environments (``make test`` and ``make
test-floor-lite``), so each end reads the other's file as ``teacher_ckpt``,
through ``--resume`` and through ``load_from``; a freshly written
checkpoint must name numpy the way its fixture does, so the fixture stays
what that environment writes. Pickled code stays refused at both ends.
"""
import os
import os.path as osp
import shutil
import sys

import numpy as np
import pytest
import torch

from utils.portable_checkpoint import (NUMPY_OBJECTS, PortableToyModel,
                                       fixture_path, pickled_globals,
                                       runner_config, write_checkpoint)

from mmkdflow.engine.checkpoint import CheckpointError, load_checkpoint_file
from mmkdflow.models.distillers.teacher import load_teacher

NUMPY_MAJOR = int(np.__version__.split('.')[0])
#: How each numpy major spells its array/scalar constructors in a pickle.
CORE_MODULE = {1: 'numpy.core.multiarray', 2: 'numpy._core.multiarray'}


class Payload:
    """An object whose unpickling runs a command."""

    def __reduce__(self):
        return (os.system, ('echo payload-ran',))


#: The hook of ``_base_/default_runtime_distill.py`` that reads MMEngine's
#: checkpoints weights-only.
SAFE_TRAINING = [dict(type='mmkdflow.SafeTrainingHook')]


def _runner(work_dir, **kwargs):
    from mmengine.config import Config
    from mmengine.runner import Runner
    kwargs.setdefault('custom_hooks', SAFE_TRAINING)
    return Runner.from_cfg(Config(runner_config(str(work_dir), **kwargs)))


def _load_as_the_runner_does(runner) -> None:
    """The steps of ``Runner.train()`` / ``test()`` that read load_from."""
    runner.call_hook('before_run')
    try:
        runner.load_or_resume()
    finally:
        runner.call_hook('after_run')


def _fixture_weights(major):
    ckpt = load_checkpoint_file(fixture_path(major), 'checkpoint')
    return {k: v for k, v in ckpt['state_dict'].items()}


@pytest.mark.parametrize('major', [1, 2])
def test_fixture_is_spelled_by_its_numpy(major):
    names = pickled_globals(fixture_path(major))
    other = CORE_MODULE[3 - major]
    assert f'{CORE_MODULE[major]}._reconstruct' in names
    assert f'{CORE_MODULE[major]}.scalar' in names
    assert not any(n.startswith(other) for n in names), names


def test_a_fresh_checkpoint_is_spelled_like_this_numpys_fixture(tmp_path):
    path = str(tmp_path / 'fresh.pth')
    write_checkpoint(path)
    numpy_names = {n for n in pickled_globals(path) if 'numpy' in n}
    assert numpy_names == {n for n in pickled_globals(
        fixture_path(NUMPY_MAJOR)) if 'numpy' in n}


@pytest.mark.parametrize('major', [1, 2])
def test_numpy_objects_read_back(major):
    ckpt = load_checkpoint_file(fixture_path(major), 'checkpoint')
    objects = ckpt['meta']['numpy_objects']
    assert objects.keys() == NUMPY_OBJECTS.keys()
    for key, expected in NUMPY_OBJECTS.items():
        value = objects[key]
        assert type(value) is type(expected), key
        if isinstance(expected, np.ndarray):
            assert value.dtype == expected.dtype
            np.testing.assert_array_equal(value, expected)
        else:
            assert value == expected, key
    hub = ckpt['message_hub']['log_scalars']['train/loss']
    data, counts = hub.data
    assert isinstance(data, np.ndarray) and data.size == 2  # two iterations
    assert np.all(np.isfinite(data)) and counts.tolist() == [1, 1]


@pytest.mark.parametrize('major', [1, 2])
def test_teacher_ckpt_from_either_numpy(major):
    teacher = PortableToyModel()
    load_teacher(teacher, fixture_path(major), allow_random_teacher=False)
    expected = _fixture_weights(major)
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())


@pytest.mark.parametrize('major', [1, 2])
def test_load_from_either_numpy(tmp_path, major):
    runner = _runner(tmp_path / 'work', load_from=fixture_path(major))
    _load_as_the_runner_does(runner)
    expected = _fixture_weights(major)
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert runner.epoch == 0  # load_from takes the weights only


@pytest.mark.parametrize('major', [1, 2])
def test_resume_from_either_numpy(tmp_path, major):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    shutil.copy(fixture_path(major), work_dir / 'epoch_1.pth')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_1.pth'))
    from mmengine.config import Config
    cfg = Config(runner_config(str(work_dir), max_epochs=2,
                               custom_hooks=SAFE_TRAINING))
    cfg.resume = True  # what tools/train.py --resume sets
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.epoch == 2 and runner.iter == 4  # one more epoch of 2
    hub = runner.message_hub.get_scalar('train/loss')
    assert hub.data[0].size == 4  # the fixture's two losses kept


def test_pickled_code_is_refused_by_every_read(tmp_path, capfd):
    hostile = str(tmp_path / 'payload.pth')
    torch.save({'state_dict': PortableToyModel().state_dict(),
                'meta': Payload()}, hostile)
    with pytest.raises(CheckpointError, match='refused by safe loading'):
        load_teacher(PortableToyModel(), hostile, allow_random_teacher=False)
    runner = _runner(tmp_path / 'work', load_from=hostile)
    with pytest.raises(CheckpointError, match='refused by safe loading'):
        _load_as_the_runner_does(runner)
    assert 'payload-ran' not in capfd.readouterr().out
