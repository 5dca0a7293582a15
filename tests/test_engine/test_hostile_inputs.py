"""Hostile and broken inputs on the user's path (config -> Runner -> tools):
pickled code, broken checkpoints, config mistakes, broken annotations.

The distiller-level cases (a hostile, empty, truncated or wrong-architecture
*teacher* checkpoint given to ``Distiller``; misspelled paths and
names) are in ``test_checkpoint_loading.py`` and
``test_distiller_build.py``; these tests
go through ``Runner.from_cfg``, ``Runner.resume`` and ``tools/train.py``.
"""
import json
import os
import os.path as osp
import shutil
import traceback

import pytest
import torch
from utils import config_path, tiny_retinanet
from utils.e2e import load_tool, shrink
from mmengine.config import Config
from mmengine.runner import Runner

import mmkdflow  # noqa: F401,E402  (registers ResumeStateHook)
from mmkdflow.engine.checkpoint import CheckpointError


class Payload:
    """Creates ``marker`` when unpickled, if safe loading let it through."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


#: The digits data of these tests (the datasets' ``digits_options`` too,
#: so the dataset finds the folder built and does not rebuild it).
DATA = dict(seed=0, num_train=4, num_val=2, image_size=64)


@pytest.fixture(scope='module')
def det_data(digits_det):
    return digits_det(**DATA)


def distill_cfg(tmp_path, data_root: str, teacher_ckpt=None,
                **points) -> Config:
    """The PKD demo config on tiny RetinaNets, one training iteration."""
    demo = 'pkd_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det.py'
    cfg = shrink(Config.fromfile(config_path('demo', demo)), 'det',
                 data_root, str(tmp_path / 'work'), batch_size=2)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.digits_options = dict(DATA)
    cfg.model.student = tiny_retinanet(8, 16)
    cfg.model.teacher = tiny_retinanet(16, 32)
    cfg.model.teacher_ckpt = teacher_ckpt
    cfg.model.allow_random_teacher = teacher_ckpt is None
    cfg.model.distill_points.fpn.connector.update(in_channels=16,
                                                  out_channels=32)
    for name, value in points.items():
        cfg.model.distill_points.fpn[name] = value
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.param_scheduler = []
    cfg.log_processor = dict(by_epoch=False)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100,
                                        by_epoch=False)
    cfg.custom_hooks.append(dict(type='mmkdflow.ResumeStateHook'))
    return cfg


def mmkdflow_model_frames(excinfo) -> list:
    return [f.filename for f in traceback.extract_tb(excinfo.tb)
            if f'mmkdflow{os.sep}models' in f.filename]


# ------------------------------------------------------ pickled code
def test_pickled_code_never_runs(tmp_path, det_data):
    marker = tmp_path / 'pwned'
    hostile = str(tmp_path / 'hostile.pth')
    torch.save({'meta': {}, 'state_dict': {}, 'x': Payload(str(marker))},
               hostile)

    # as the teacher checkpoint of a config: refused when the model is built
    with pytest.raises(CheckpointError,
                       match=r'refused by safe loading.*(posix|os)\.system'):
        Runner.from_cfg(distill_cfg(tmp_path, det_data, hostile))
    # as a resume (or load_from) checkpoint of a plain Runner: with the
    # config's SafeTrainingHook, MMEngine reads local files through
    # mmkdflow's safe loader on every torch of the range (torch < 2.6 alone
    # would unpickle anything); checked before MMEngine's read
    cfg = distill_cfg(tmp_path, det_data)
    cfg.resume, cfg.load_from = True, hostile
    runner = Runner.from_cfg(cfg)
    with pytest.raises(CheckpointError,
                       match=r'refused by safe loading.*(posix|os)\.system'):
        runner.train()
    from mmkdflow.engine.checkpoint import safe_mmengine_loaders
    with safe_mmengine_loaders(), pytest.raises(
            CheckpointError,
            match=r'refused by safe loading.*(posix|os)\.system'):
        runner.load_or_resume()  # MMEngine's own read, through the loader
    assert not marker.exists()


def test_pickled_code_is_refused_in_mmkdflow_words_by_every_tool(
        tmp_path, det_data):
    """--resume, load_from, tools/test.py and tools/export_student.py
    refuse it before MMEngine sees it, and never suggest turning safe
    loading off (torch's own message suggests weights_only=False)."""
    marker = tmp_path / 'pwned'
    hostile = str(tmp_path / 'hostile.pth')
    torch.save({'meta': {}, 'state_dict': {}, 'x': Payload(str(marker))},
               hostile)
    config = str(tmp_path / 'cfg.py')
    distill_cfg(tmp_path, det_data).dump(config)
    train, test = load_tool('train'), load_tool('test')
    export = load_tool('export_student')
    calls = [
        ('resume checkpoint', lambda: train.main([config, '--resume',
                                                  hostile])),
        ('load_from', lambda: train.main(
            [config, '--cfg-options', f'load_from={hostile}'])),
        ('checkpoint', lambda: test.main([config, hostile])),
        ('checkpoint', lambda: export.export(
            config, hostile, str(tmp_path / 'out.pth'))),
    ]
    for role, call in calls:
        with pytest.raises(CheckpointError) as excinfo:
            call()
        message = str(excinfo.value)
        assert message.startswith(f'{role} {hostile!r} was refused by safe '
                                  f'loading'), message
        assert 'system' in message and 'weights_only' not in message
    assert not marker.exists()
    assert not (tmp_path / 'out.pth').exists()


# --------------------------------------------------- broken checkpoints
def test_broken_resume_checkpoints_stop_the_tools_first(tmp_path, det_data):
    config = str(tmp_path / 'cfg.py')
    distill_cfg(tmp_path, det_data).dump(config)
    good = str(tmp_path / 'good.pth')
    torch.save({'state_dict': {'w': torch.zeros(100)}}, good)
    data = open(good, 'rb').read()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) // 2])
    (tmp_path / 'empty.pth').write_bytes(b'')
    train, test = load_tool('train'), load_tool('test')
    cases = [('empty.pth', CheckpointError, "resume checkpoint .*empty.pth' "
              r'is empty \(0 bytes\)'),
             ('cut.pth', CheckpointError, 'truncated or not a torch'),
             ('nope.pth', FileNotFoundError, 'does not exist')]
    for name, error, message in cases:
        path = str(tmp_path / name)
        with pytest.raises(error, match=message):
            train.main([config, '--resume', path])
        with pytest.raises(error, match=message.replace('resume ', '')):
            test.main([config, path])
    # the latest checkpoint of the work dir (--resume without a path) is
    # truncated: the newest complete one is taken instead, and said so
    from types import SimpleNamespace

    from mmengine.logging import MMLogger

    from mmkdflow.engine import SafeTrainingHook
    work = tmp_path / 'resumed'
    work.mkdir()
    shutil.copy(good, work / 'epoch_2.pth')
    shutil.copy(tmp_path / 'cut.pth', work / 'epoch_3.pth')
    (work / 'last_checkpoint').write_text(str(work / 'epoch_3.pth'))
    runner = SimpleNamespace(cfg=Config(dict(resume=True)), _load_from=None,
                             work_dir=str(work),
                             logger=MMLogger.get_current_instance())
    SafeTrainingHook()._choose_checkpoint(runner)
    assert runner._load_from == str(work / 'epoch_2.pth')


def test_resume_checkpoint_of_another_architecture(tmp_path, det_data):
    """MMEngine resumes non-strictly (mismatches only logged, weights left
    at their init); the ResumeStateHook of tools/train.py refuses."""
    other = distill_cfg(tmp_path, det_data)
    other.model.student = tiny_retinanet(8, 24)
    other.model.distill_points.fpn.connector.in_channels = 24
    model = Runner.from_cfg(other).model
    path = str(tmp_path / 'other.pth')
    torch.save({'meta': {'epoch': 1, 'iter': 1},
                'state_dict': model.state_dict()}, path)
    cfg = distill_cfg(tmp_path, det_data)
    cfg.resume, cfg.load_from = True, path
    with pytest.raises(CheckpointError,
                       match=r'resume checkpoint does not match the '
                       r'Distiller.*shape mismatches: '
                       r'student\.neck\.lateral_convs'):
        Runner.from_cfg(cfg).load_or_resume()


# ------------------------------------------------------ config mistakes
@pytest.mark.parametrize('change, error, message', [
    (dict(student='nekc'), ValueError, r"no module 'nekc'.*neck"),
    (dict(teacher='neck.fpn_conv'), ValueError,
     r"no module 'neck\.fpn_conv'.*neck\.fpn_convs"),
    (dict(connector=dict(type='ConvAdaptor', in_channels=16,
                         out_channels=32)), KeyError,
     r"'ConvAdaptor' is not registered.*ConvAdapter"),
    (dict(connector=dict(type='DiffKDConector', student_channels=16,
                         teacher_channels=32)), KeyError,
     r"'DiffKDConector' is not registered.*DiffKDConnector"),
    (dict(loss=dict(type='PKDLos')), KeyError,
     r"'PKDLos' is not registered.*PKDLoss"),
    (dict(connector=None), ValueError,
     r"student 'neck' gives 16 channels but teacher 'neck' gives 32.*"
     r"ConvAdapter', in_channels=16, out_channels=32"),
])
def test_config_mistakes_fail_when_the_runner_builds(tmp_path, det_data,
                                                     change, error, message):
    cfg = distill_cfg(tmp_path, det_data, **change)
    with pytest.raises(error, match=message):
        Runner.from_cfg(cfg)


def test_connector_channel_mistake_fails_before_any_update(tmp_path,
                                                           det_data):
    """Connectors check their channels on the first tensors they get (the
    distiller's build-time check covers points without a connector): the
    error names the connector and the fix, before any weight changes."""
    cfg = distill_cfg(tmp_path, det_data, connector=dict(
        type='ConvAdapter', in_channels=64, out_channels=32))
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match='ConvAdapter expects 64 student '
                       'channels.*set in_channels=16'):
        runner.train()
    assert runner.iter == 0


# ---------------------------------------------------- broken annotations
def broken_copy(det_data: str, tmp_path, edit) -> str:
    root = str(tmp_path / 'digits_det')
    shutil.copytree(det_data, root)
    ann_file = osp.join(root, 'annotations', 'train.json')
    with open(ann_file) as f:
        ann = json.load(f)
    edit(root, ann)
    with open(ann_file, 'w') as f:
        json.dump(ann, f)
    return root


def test_annotation_with_a_malformed_box(tmp_path, det_data):
    def edit(root, ann):
        ann['annotations'][0]['bbox'] = ann['annotations'][0]['bbox'][:3]

    runner = Runner.from_cfg(distill_cfg(
        tmp_path, broken_copy(det_data, tmp_path, edit)))
    with pytest.raises(ValueError,
                       match='not enough values to unpack') as excinfo:
        runner.train()
    # raised where mmdet parses the annotation, before any model code
    last = traceback.extract_tb(excinfo.tb)[-1]
    assert last.filename.endswith(osp.join('mmdet', 'datasets', 'coco.py'))
    assert last.name == 'parse_data_info'
    assert not mmkdflow_model_frames(excinfo)


def test_degenerate_boxes_are_dropped_by_mmdet(tmp_path, det_data):
    def edit(root, ann):
        for i, box in enumerate(ann['annotations'][:3]):
            box['bbox'][2:] = [-5.0, 3.0] if i % 2 else [0.0, 0.0]

    runner = Runner.from_cfg(distill_cfg(
        tmp_path, broken_copy(det_data, tmp_path, edit)))
    runner.train()
    scalars = runner.message_hub.log_scalars
    for key in ('train/distill.fpn.loss', 'train/student.loss_bbox'):
        assert torch.isfinite(torch.tensor(scalars[key].current()))


def test_missing_image(tmp_path, det_data):
    def edit(root, ann):
        for image in ann['images']:
            os.remove(osp.join(root, 'train', image['file_name']))
            break

    runner = Runner.from_cfg(distill_cfg(
        tmp_path, broken_copy(det_data, tmp_path, edit)))
    with pytest.raises(FileNotFoundError, match=r'000001\.png') as excinfo:
        runner.train()
    # raised by the data pipeline (mmcv's LoadImageFromFile), not the model
    assert any(f.name == 'transform' and 'mmcv' in f.filename
               for f in traceback.extract_tb(excinfo.tb))
    assert not mmkdflow_model_frames(excinfo)
