# OFM-KT on DigitsCls: online distillation, no teacher. Same student and
# schedule as kd_resnet18_resnet18c8_1xb32-10e_digits-cls.py.
# The logit flow of fmkt_resnet18_resnet18c8_1xb32-10e_digits-cls.py (mlp
# meta-encoder, N = 4) without a teacher: every step's logits o_i get
# label-smoothed CE (0.1) and KD (T = 4) towards the stop-gradient ensemble
# mean_j o_j, weight 1 / N each. The mean logits replace the student's head.fc
# output (student_loss_weight=0); the flow is part of the deployed classifier.
_base_ = [
    '../_base_/datasets/digits_cls.py',
    '../_base_/schedules/digits_cls_schedule.py',
]
model = dict(
    _scope_='mmkdflow',
    type='Distiller',
    student=dict(cfg_path='{{fileDirname}}/'
                 'student_resnet18c8_1xb32-10e_digits-cls.py'),
    teacher=None,
    student_loss_weight=0.0,
    distill_points=dict(
        flow=dict(
            student='backbone',
            student_index=-1,
            replace='head.fc',
            connector=dict(
                type='FMKTLogitConnector',
                channels=64,
                meta_encoder='mlp',
                num_steps=4,
                num_classes=10,
                online=True,
                label_smoothing=0.1,
                distance=dict(type='KDLoss', temperature=4.0,
                              loss_weight=1.0)))))
