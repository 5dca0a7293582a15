"""End to end with mmseg: Runner trains a teacher, distills a student on
DigitsSeg (CWD on the decode head's logits, iteration-based), checkpoints,
resumes, and the exported student runs in mmseg."""
import os
import os.path as osp

import pytest
import torch
from conftest import config_path, tiny_deeplabv3
from e2e_utils import run_tool, run_without_mmkdflow, shrink
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

pytestmark = pytest.mark.slow


class _IterLog(Hook):
    """Remember the iteration counter at the start of every train step."""

    def __init__(self):
        self.iters = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.iters.append(runner.iter)


def test_deeplabv3_cwd_distill_resume_export(tmp_path):
    data_root = str(tmp_path / 'digits_seg')

    # 1. the teacher, trained for two iterations and checkpointed
    cfg = shrink(Config.fromfile(config_path(
        'demo', 'deeplabv3_r18_digits_teacher.py')), 'seg', data_root,
        str(tmp_path / 'teacher'))
    cfg.model = tiny_deeplabv3(16)
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 2
    cfg.default_hooks.checkpoint.interval = 2
    cfg.param_scheduler = []
    teacher_runner = Runner.from_cfg(cfg)
    teacher_runner.train()
    teacher_ckpt = str(tmp_path / 'teacher' / 'iter_2.pth')
    assert osp.isfile(teacher_ckpt)
    teacher_state = {k: v.clone() for k, v in
                     teacher_runner.model.state_dict().items()}

    # 2. distillation for four iterations, checkpoint every two
    distill_cfg_path = config_path('demo',
                                   'cwd_deeplabv3_r18_r18c16_digits.py')
    student = tiny_deeplabv3(8)

    def distill_cfg(max_iters):
        cfg = shrink(Config.fromfile(distill_cfg_path), 'seg', data_root,
                     str(tmp_path / 'distill'))
        cfg.model.student = student
        cfg.model.teacher = tiny_deeplabv3(16)
        cfg.model.teacher_ckpt = teacher_ckpt
        cfg.train_cfg.max_iters = max_iters
        cfg.train_cfg.val_interval = max_iters
        cfg.default_hooks.checkpoint.interval = 2
        cfg.default_hooks.checkpoint.max_keep_ckpts = 3
        cfg.param_scheduler = []
        return cfg

    runner = Runner.from_cfg(distill_cfg(4))
    log = _IterLog()
    runner.register_hook(log)
    runner.train()
    model = runner.model
    assert runner.iter == 4
    assert log.iters == [0, 1, 2, 3]
    scalars = runner.message_hub.log_scalars
    assert 'train/distill.logits.loss' in scalars
    assert 'train/student.decode.loss_ce' in scalars
    assert 'val/time' in scalars  # the student was validated
    for key, value in model.teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_state[key])
    for it in (2, 4):
        assert osp.isfile(tmp_path / 'distill' / f'iter_{it}.pth')
        assert osp.isfile(tmp_path / 'distill' / f'iter_{it}_student.pth')

    # 3. resume from iteration 4 (safe loading of mmengine's own checkpoint)
    resumed_cfg = distill_cfg(6)
    resumed_cfg.resume = True
    resumed_cfg.load_from = str(tmp_path / 'distill' / 'iter_4.pth')
    resumed = Runner.from_cfg(resumed_cfg)
    log = _IterLog()
    resumed.register_hook(log)
    resumed.train()
    assert log.iters == [4, 5]
    assert resumed.iter == 6
    assert osp.isfile(tmp_path / 'distill' / 'iter_6.pth')
    assert osp.isfile(tmp_path / 'distill' / 'iter_6_student.pth')
    for key, value in resumed.model.teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_state[key])

    # 4. export with the tool and load in plain mmseg without mmkdflow
    out = str(tmp_path / 'export' / 'student.pth')
    student_cfg_path = osp.splitext(out)[0] + '.py'
    run_tool('tools/export_student.py', distill_cfg_path,
             str(tmp_path / 'distill' / 'iter_6.pth'), out)
    student_cfg = Config.fromfile(student_cfg_path)
    assert student_cfg.model.type == 'EncoderDecoder'
    assert student_cfg.default_scope == 'mmseg'
    # the export tool keeps the config's student (the demo size); write the
    # tiny student of this test for the vanilla load
    student_cfg.model = Config(dict(m=student)).m
    student_cfg.model.pop('_scope_')
    student_cfg.dump(student_cfg_path)
    val_dir = osp.join(data_root, 'img_dir', 'val')
    image = osp.join(val_dir, sorted(
        f for f in os.listdir(val_dir) if f.endswith('.png'))[0])

    from mmseg.apis import inference_model
    distiller = resumed.model
    distiller.eval()
    distiller.student.cfg = Config.fromfile(student_cfg_path)
    expected = inference_model(distiller.student, image)
    assert expected.seg_logits.data.shape == (11, 64, 64)
    torch.save(dict(logits=expected.seg_logits.data,
                    labels=expected.pred_sem_seg.data),
               str(tmp_path / 'expected.pth'))
    # both the exported file and the hook's file, in one fresh interpreter
    ckpts = [out, str(tmp_path / 'distill' / 'iter_6_student.pth')]
    printed = run_without_mmkdflow(f'''
        import torch
        from mmseg.apis import inference_model, init_model
        expected = torch.load({str(tmp_path / 'expected.pth')!r})
        for ckpt in {ckpts!r}:
            model = init_model({student_cfg_path!r}, ckpt, device='cpu')
            assert model.dataset_meta['classes'][0] == 'background'
            assert model.dataset_meta['classes'][4] == '3'
            result = inference_model(model, {image!r})
            torch.testing.assert_close(result.seg_logits.data,
                                       expected['logits'])
            torch.testing.assert_close(result.pred_sem_seg.data,
                                       expected['labels'])
            print('OK', tuple(result.seg_logits.data.shape))
        ''')
    assert printed.count('OK (11, 64, 64)') == 2
