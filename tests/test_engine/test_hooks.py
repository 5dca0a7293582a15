"""TeacherReferenceHook: the teacher's metrics, once, before training."""
import pytest
import torch
from utils import config_path, tiny_resnet_cls
from utils.e2e import shrink
from mmengine.config import Config
from mmengine.runner import Runner

pytestmark = pytest.mark.slow


def test_teacher_reference_hook_logs_the_teachers_accuracy(tmp_path):
    cfg = shrink(Config.fromfile(config_path(
        'demo', 'kd_resnet18_resnet18c8_1xb32-10e_digits-cls.py')), 'cls',
        str(tmp_path / 'digits_cls'), str(tmp_path / 'work'), batch_size=64)
    cfg.model.student = tiny_resnet_cls(8)
    cfg.model.teacher = tiny_resnet_cls(16)
    cfg.model.teacher_ckpt = None
    cfg.model.allow_random_teacher = True
    cfg.train_cfg.max_epochs = 1
    cfg.param_scheduler = []
    cfg.custom_hooks = [dict(type='mmkdflow.TeacherReferenceHook')]
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.message_hub.get_info('teacher_metrics')

    # the same number, computed by hand from the teacher's logits
    model = runner.model
    correct = total = 0
    with torch.no_grad():
        for batch in runner.val_dataloader:
            data = model.data_preprocessor(batch, False)
            logits = model.teacher(data['inputs'], mode='tensor')
            labels = torch.cat([s.gt_label for s in data['data_samples']])
            correct += (logits.argmax(1) == labels).sum().item()
            total += labels.numel()
    assert metrics['accuracy/top1'] == pytest.approx(100 * correct / total)
    assert 'teacher/accuracy/top1' in runner.message_hub.log_scalars
    assert model.predict_with == 'student'
