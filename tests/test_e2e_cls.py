"""End to end with mmpretrain: Runner trains a teacher, distills a student on
DigitsCls (Hinton KD on the head's logits, epoch-based), checkpoints,
resumes, and the exported student runs in mmpretrain."""
import os
import os.path as osp

import pytest
import torch
from conftest import config_path, tiny_resnet_cls
from e2e_utils import run_tool, run_without_mmkdflow, shrink
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

pytestmark = pytest.mark.slow


class _EpochLog(Hook):
    """Remember (epoch, iter) at the start of every train epoch."""

    def __init__(self):
        self.starts = []

    def before_train_epoch(self, runner):
        self.starts.append((runner.epoch, runner.iter))


def test_resnet_kd_distill_resume_export(tmp_path):
    data_root = str(tmp_path / 'digits_cls')

    # 1. the teacher, trained for one short epoch and checkpointed
    cfg = shrink(Config.fromfile(config_path(
        'demo', 'resnet18_cifar_digits_teacher.py')), 'cls', data_root,
        str(tmp_path / 'teacher'))
    cfg.model = tiny_resnet_cls(16)
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    cfg.default_hooks.checkpoint.interval = 1
    cfg.param_scheduler = []
    teacher_runner = Runner.from_cfg(cfg)
    teacher_runner.train()
    teacher_ckpt = str(tmp_path / 'teacher' / 'epoch_1.pth')
    assert osp.isfile(teacher_ckpt)
    teacher_state = {k: v.clone() for k, v in
                     teacher_runner.model.state_dict().items()}

    # 2. distillation for two epochs, checkpoint after each
    distill_cfg_path = config_path('demo', 'kd_resnet18_r18c8_digits.py')
    student = tiny_resnet_cls(8)

    def distill_cfg(max_epochs):
        cfg = shrink(Config.fromfile(distill_cfg_path), 'cls', data_root,
                     str(tmp_path / 'distill'))
        cfg.model.student = student
        cfg.model.teacher = tiny_resnet_cls(16)
        cfg.model.teacher_ckpt = teacher_ckpt
        cfg.train_cfg.max_epochs = max_epochs
        cfg.train_cfg.val_interval = max_epochs
        cfg.default_hooks.checkpoint.interval = 1
        cfg.default_hooks.checkpoint.max_keep_ckpts = 3
        cfg.param_scheduler = []
        return cfg

    runner = Runner.from_cfg(distill_cfg(2))
    log = _EpochLog()
    runner.register_hook(log)
    runner.train()
    model = runner.model
    iters_per_epoch = len(runner.train_dataloader)
    assert iters_per_epoch == 16  # 64 training crops, batch 4
    assert runner.iter == 2 * iters_per_epoch
    assert runner.epoch == 2
    assert log.starts == [(0, 0), (1, iters_per_epoch)]
    scalars = runner.message_hub.log_scalars
    assert 'train/distill.logits.loss' in scalars
    assert 'train/student.loss' in scalars
    assert 'val/time' in scalars  # the student was validated
    for key, value in model.teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_state[key])
    for epoch in (1, 2):
        assert osp.isfile(tmp_path / 'distill' / f'epoch_{epoch}.pth')
        assert osp.isfile(tmp_path / 'distill' / f'epoch_{epoch}_student.pth')

    # 3. resume from epoch 2 (safe loading of mmengine's own checkpoint)
    resumed_cfg = distill_cfg(3)
    resumed_cfg.resume = True
    resumed_cfg.load_from = str(tmp_path / 'distill' / 'epoch_2.pth')
    resumed = Runner.from_cfg(resumed_cfg)
    log = _EpochLog()
    resumed.register_hook(log)
    resumed.train()
    assert log.starts == [(2, 2 * iters_per_epoch)]
    assert resumed.iter == 3 * iters_per_epoch
    assert resumed.epoch == 3
    assert osp.isfile(tmp_path / 'distill' / 'epoch_3.pth')
    assert osp.isfile(tmp_path / 'distill' / 'epoch_3_student.pth')
    for key, value in resumed.model.teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_state[key])

    # 4. export with the tool and load in plain mmpretrain without mmkdflow
    out = str(tmp_path / 'export' / 'student.pth')
    student_cfg_path = osp.splitext(out)[0] + '.py'
    run_tool('tools/export_student.py', distill_cfg_path,
             str(tmp_path / 'distill' / 'epoch_3.pth'), out)
    student_cfg = Config.fromfile(student_cfg_path)
    assert student_cfg.model.type == 'ImageClassifier'
    assert student_cfg.default_scope == 'mmpretrain'
    # the export tool keeps the config's student (the demo size); write the
    # tiny student of this test for the vanilla load
    student_cfg.model = Config(dict(m=student)).m
    student_cfg.model.pop('_scope_')
    student_cfg.dump(student_cfg_path)
    val_dir = osp.join(data_root, 'val', '3')
    image = osp.join(val_dir, sorted(
        f for f in os.listdir(val_dir) if f.endswith('.png'))[0])

    # mmpretrain's inference_model picks its inferencer from model-zoo
    # metadata, which a model built from a config file has not; the
    # ImageClassificationInferencer is the vanilla API behind it
    from mmpretrain.apis import ImageClassificationInferencer
    distiller = resumed.model
    distiller.eval()
    distiller.student._config = Config.fromfile(student_cfg_path)
    expected = ImageClassificationInferencer(distiller.student)(image)[0]
    assert expected['pred_scores'].shape == (10, )
    torch.save(dict(scores=torch.from_numpy(expected['pred_scores']),
                    label=int(expected['pred_label'])),
               str(tmp_path / 'expected.pth'))
    # both the exported file and the hook's file, in one fresh interpreter
    ckpts = [out, str(tmp_path / 'distill' / 'epoch_3_student.pth')]
    printed = run_without_mmkdflow(f'''
        import torch
        from mmpretrain import get_model
        from mmpretrain.apis import ImageClassificationInferencer
        expected = torch.load({str(tmp_path / 'expected.pth')!r})
        for ckpt in {ckpts!r}:
            model = get_model({student_cfg_path!r}, pretrained=ckpt,
                              device='cpu')
            assert model._dataset_meta['classes'][3] == '3'
            result = ImageClassificationInferencer(model)({image!r})[0]
            torch.testing.assert_close(
                torch.from_numpy(result['pred_scores']), expected['scores'])
            assert int(result['pred_label']) == expected['label']
            assert result['pred_class'] == str(expected['label'])
            print('OK', len(result['pred_scores']))
        ''')
    assert printed.count('OK 10') == 2
