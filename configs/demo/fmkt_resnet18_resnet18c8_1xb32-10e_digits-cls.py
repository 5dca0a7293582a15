# FM-KT logit flow on DigitsCls. Same student, teacher, teacher checkpoint and
# schedule as kd_resnet18_resnet18c8_1xb32-10e_digits-cls.py.
# The flow starts from the student's last feature map (64 x 4 x 4): an mlp
# meta-encoder (the released CIFAR one) runs N = 4 rectified Euler steps;
# each step's prediction goes through a pooled Linear(64, 10) and is matched
# to the teacher logits with KD (T = 4, as the KD demo) plus CE on the labels,
# weight 1 / N each. The mean logits replace the student's head.fc output
# (no CE outside the flow: student_loss_weight=0); the flow is part of the
# deployed classifier.
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
    student_loss_weight=0.0,
    distill_points=dict(
        flow=dict(
            student='backbone',
            student_index=-1,
            teacher='head.fc',
            replace='head.fc',
            connector=dict(
                type='FMKTLogitConnector',
                channels=64,
                meta_encoder='mlp',
                num_steps=4,
                num_classes=10,
                distance=dict(type='KDLoss', temperature=4.0,
                              loss_weight=1.0)))))
