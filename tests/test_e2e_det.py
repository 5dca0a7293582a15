"""End to end with mmdet: Runner trains a teacher, distills a student on
DigitsDet, checkpoints, resumes, and the exported student runs in mmdet."""
import os.path as osp

import pytest
import torch
from conftest import config_path, tiny_retinanet
from e2e_utils import run_tool, run_without_mmkdflow, shrink
from mmengine.config import Config
from mmengine.runner import Runner

pytestmark = pytest.mark.slow


def test_retinanet_distill_resume_export(tmp_path):
    data_root = str(tmp_path / 'digits_det')

    # 1. the teacher, trained for one short epoch and checkpointed
    cfg = shrink(Config.fromfile(config_path(
        'demo', 'retinanet_r18_digits_teacher.py')), 'det', data_root,
        str(tmp_path / 'teacher'))
    cfg.model = tiny_retinanet(16, 32)
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
    distill_cfg_path = config_path('demo', 'pkd_retinanet_r18_r18c16_digits.py')
    student = tiny_retinanet(8, 16)
    student['test_cfg']['score_thr'] = 0.0  # keep boxes to compare

    def distill_cfg(max_epochs):
        cfg = shrink(Config.fromfile(distill_cfg_path), 'det', data_root,
                     str(tmp_path / 'distill'))
        cfg.model.student = student
        cfg.model.teacher = tiny_retinanet(16, 32)
        cfg.model.teacher_ckpt = teacher_ckpt
        cfg.model.distill_points.fpn.connector.update(
            in_channels=16, out_channels=32)
        cfg.train_cfg.max_epochs = max_epochs
        cfg.train_cfg.val_interval = max_epochs
        cfg.default_hooks.checkpoint.interval = 1
        cfg.default_hooks.checkpoint.max_keep_ckpts = 3
        cfg.param_scheduler = []
        return cfg

    runner = Runner.from_cfg(distill_cfg(2))
    runner.train()
    model = runner.model
    iters_per_epoch = len(runner.train_dataloader)
    assert runner.iter == 2 * iters_per_epoch
    scalars = runner.message_hub.log_scalars
    assert 'train/distill.fpn.loss' in scalars
    assert 'train/student.loss_cls' in scalars
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
    resumed.train()
    assert resumed.iter == 3 * iters_per_epoch
    assert resumed.epoch == 3

    # 4. export with the tool and load in plain mmdet without mmkdflow
    out = str(tmp_path / 'export' / 'student.pth')
    run_tool('tools/export_student.py', distill_cfg_path,
             str(tmp_path / 'distill' / 'epoch_3.pth'), out)
    student_cfg = Config.fromfile(osp.splitext(out)[0] + '.py')
    assert student_cfg.model.type == 'RetinaNet'
    # the export tool keeps the config's student (the demo size); write the
    # tiny student of this test for the vanilla load
    student_cfg.model = Config(dict(m=student)).m
    student_cfg.model.pop('_scope_')
    student_cfg.dump(osp.splitext(out)[0] + '.py')
    image = osp.join(data_root, 'val', sorted(
        f for f in __import__('os').listdir(osp.join(data_root, 'val'))
        if f.endswith('.png'))[0])

    from mmdet.apis import inference_detector
    distiller = resumed.model
    distiller.eval()
    distiller.student.cfg = student_cfg
    expected = inference_detector(distiller.student, image)
    torch.save(dict(bboxes=expected.pred_instances.bboxes,
                    scores=expected.pred_instances.scores),
               str(tmp_path / 'expected.pth'))
    for ckpt in (out, str(tmp_path / 'distill' / 'epoch_3_student.pth')):
        printed = run_without_mmkdflow(f'''
            import torch
            from mmdet.apis import init_detector, inference_detector
            model = init_detector({osp.splitext(out)[0] + '.py'!r},
                                  {ckpt!r}, device='cpu')
            assert model.dataset_meta['classes'][3] == '3'
            result = inference_detector(model, {image!r})
            expected = torch.load({str(tmp_path / 'expected.pth')!r})
            torch.testing.assert_close(result.pred_instances.bboxes,
                                       expected['bboxes'])
            torch.testing.assert_close(result.pred_instances.scores,
                                       expected['scores'])
            print('OK', len(result.pred_instances.scores))
            ''')
        assert int(printed.split('OK')[1]) == 100
