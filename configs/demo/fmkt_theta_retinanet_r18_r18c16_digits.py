# FM-KT-Theta on DigitsDet [our extension for FPN]: the flow of
# fmkt_retinanet_r18_r18c16_digits.py is trained beside the student, and its
# stop-gradient mean prediction is distilled back into each raw student FPN
# level (loss_theta = w * PKD(Z, stopgrad(mean_i Xhat_i)), w = 2). The raw
# levels are never replaced, so the deployed detector is the vanilla student
# (exported without mmkdflow). Same student, teacher, teacher checkpoint and
# schedule as pkd_retinanet_r18_r18c16_digits.py.
_base_ = [
    '../_base_/datasets/digits_det.py',
    '../_base_/schedules/digits_det_schedule.py',
]
teacher_ckpt = 'work_dirs/demo/teacher/epoch_12.pth'
model = dict(
    _scope_='mmkdflow',
    type='OfflineDistiller',
    student=dict(cfg_path='{{fileDirname}}/retinanet_r18c16_digits_student.py'),
    teacher=dict(cfg_path='{{fileDirname}}/retinanet_r18_digits_teacher.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            index=(0, 1, 2, 3, 4),
            replace=True,
            connector=dict(
                type='FMKTConnector',
                channels=64,
                meta_encoder='convnext',
                num_steps=2,
                level_weights=[2.0, 2.0, 2.0, 2.0, 2.0],
                teacher_proj=128,
                theta=True,
                distance=dict(type='PKDLoss', loss_weight=1.0)))))
custom_hooks = [dict(type='mmkdflow.StudentCheckpointHook')]
