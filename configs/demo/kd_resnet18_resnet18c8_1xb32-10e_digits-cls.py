# Hinton KD on DigitsCls: KL divergence of the logits with T = 4.
# Tuning: none yet (0 tries on the tuning split, tools/demo.py --tune;
# every method gets the same number of tries).
_base_ = [
    '../_base_/datasets/digits_cls.py',
    '../_base_/schedules/digits_cls_schedule.py',
]
teacher_ckpt = 'work_dirs/demo/cls/teacher/epoch_10.pth'
model = dict(
    _scope_='mmkdflow',
    type='Distiller',
    student=dict(cfg_path='{{fileDirname}}/'
                 'student_resnet18c8_1xb32-10e_digits-cls.py'),
    teacher=dict(cfg_path='{{fileDirname}}/'
                 'teacher_resnet18_1xb32-10e_digits-cls.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        logits=dict(
            student='head.fc',
            teacher='head.fc',
            loss=dict(type='KDLoss', temperature=4.0, loss_weight=1.0))))
custom_hooks = [
    *_base_.safe_training_hooks,
    dict(type='mmkdflow.StudentCheckpointHook')
]
