"""Training checkpoints leave out the frozen teacher and keep its identity
(``teacher_ckpt`` and a hash); loading checks the hash (issue 25)."""
import copy

import pytest
import torch
from mmengine.runner import Runner
from mmengine.runner.checkpoint import (get_state_dict, save_checkpoint,
                                        weights_to_cpu)

from utils import tiny_retinanet
from mmkdflow.engine.checkpoint import load_checkpoint_file
from mmkdflow.models import Distiller
from mmkdflow.engine.checkpoint.teacher_identity import (IDENTITY_CKPT,
                                                        IDENTITY_SHA256)


def distiller(teacher_ckpt, **options) -> Distiller:
    return Distiller(
        student=tiny_retinanet(8, 16), teacher=tiny_retinanet(16, 32),
        teacher_ckpt=teacher_ckpt,
        distill_points=dict(fpn=dict(
            student='neck.fpn_convs.0.conv', teacher='neck.fpn_convs.0.conv',
            connector=dict(type='ConvAdapter', in_channels=16,
                           out_channels=32),
            loss=dict(type='MSELoss'))), **options)


def runner(model, work_dir, load_from=None) -> Runner:
    return Runner(model=model, work_dir=str(work_dir), load_from=load_from,
                  default_scope='mmkdflow', log_level='WARNING')


def save(model, work_dir, name='ckpt.pth') -> str:
    """Write the weights as ``Runner.save_checkpoint`` does (MMEngine's
    ``get_state_dict``, ``weights_to_cpu``, ``save_checkpoint``); the
    Runner's own writes are in ``tests/test_resume.py``."""
    path = str(work_dir / name)
    save_checkpoint({'meta': {}, 'state_dict': weights_to_cpu(
        get_state_dict(model))}, path)
    return path


def test_runner_checkpoint_has_no_teacher_and_reloads(tmp_path,
                                                      saved_teacher):
    path, teacher_state = saved_teacher(tiny_retinanet(16, 32))
    model = distiller(path)
    ckpt_path = save(model, tmp_path)
    state = torch.load(ckpt_path, weights_only=True)['state_dict']
    assert not [k for k in state if k.startswith('teacher.')]
    assert bytes(state[IDENTITY_CKPT].tolist()).decode() == path
    assert bytes(state[IDENTITY_SHA256].tolist()).decode() == \
        model.teacher_hash
    torch.manual_seed(5)
    other = distiller(path)
    r = runner(other, tmp_path / 'load', load_from=ckpt_path)
    r.load_checkpoint(ckpt_path)
    for key, value in model.student.state_dict().items():
        torch.testing.assert_close(other.student.state_dict()[key], value,
                                   rtol=0, atol=0)
    for key, value in teacher_state.items():
        torch.testing.assert_close(other.teacher.state_dict()[key], value,
                                   rtol=0, atol=0)
    # strict loading sees neither missing teacher keys nor extra ones
    other.load_state_dict(model.state_dict(), strict=True)


def test_changed_teacher_refused_unless_allowed(tmp_path, saved_teacher):
    path, _ = saved_teacher(tiny_retinanet(16, 32))
    ckpt_path = save(distiller(path), tmp_path)
    saved_teacher(tiny_retinanet(16, 32), seed=2)  # same path, new weights
    changed = distiller(path)
    with pytest.raises(ValueError, match='teacher changed') as err:
        runner(changed, tmp_path / 'a').load_checkpoint(ckpt_path)
    message = str(err.value)
    saved_hash = bytes(load_checkpoint_file(ckpt_path)['state_dict'][
        IDENTITY_SHA256].tolist()).decode()
    assert saved_hash in message and changed.teacher_hash in message
    assert 'allow_teacher_change' in message
    allowed = distiller(path, allow_teacher_change=True)
    teacher = copy.deepcopy(allowed.teacher.state_dict())
    runner(allowed, tmp_path / 'b').load_checkpoint(ckpt_path)
    for key, value in teacher.items():
        torch.testing.assert_close(allowed.teacher.state_dict()[key], value)


def test_old_checkpoint_with_teacher_inside_still_loads(tmp_path,
                                                        saved_teacher):
    path, _ = saved_teacher(tiny_retinanet(16, 32))
    model = distiller(path)
    old = {'meta': {}, 'state_dict': {
        **{f'student.{k}': v for k, v in model.student.state_dict().items()},
        **{f'teacher.{k}': v for k, v in model.teacher.state_dict().items()},
        **{f'connectors.{k}': v
           for k, v in model.connectors.state_dict().items()}}}
    torch.save(old, tmp_path / 'old.pth')
    other = distiller(path)
    runner(other, tmp_path / 'load').load_checkpoint(str(tmp_path /
                                                         'old.pth'))
    for key, value in model.student.state_dict().items():
        torch.testing.assert_close(other.student.state_dict()[key], value)


def test_random_teacher_stays_in_the_checkpoint():
    model = distiller(None, allow_random_teacher=True)
    state = model.state_dict()
    assert [k for k in state if k.startswith('teacher.')]
    assert IDENTITY_SHA256 not in state


def test_moved_teacher_file_resumes_and_strict_checks_pass(tmp_path,
                                                          saved_teacher):
    """The same teacher under another (longer) path: the identity's text
    entries differ in length, which no key-by-key check mistakes for an
    architecture mismatch; the hash decides."""
    import shutil

    from mmkdflow.engine.checkpoint import load_weights_strictly
    from mmkdflow.engine.checkpoint.resume_state_hook import \
        check_resume_weights
    path, _ = saved_teacher(tiny_retinanet(16, 32))
    ckpt_path = save(distiller(path), tmp_path)
    moved = str(tmp_path / 'moved' / 'a_longer_name_teacher.pth')
    (tmp_path / 'moved').mkdir()
    shutil.copy(path, moved)
    model = distiller(moved)
    checkpoint = load_checkpoint_file(ckpt_path)
    check_resume_weights(model, checkpoint)
    load_weights_strictly(model, checkpoint['state_dict'], 'checkpoint',
                          ckpt_path)
    runner(model, tmp_path / 'r').load_checkpoint(ckpt_path)
