# Feature KD on DigitsDet: PKD on the five FPN levels, student FPN (64 ch)
# mapped to the teacher's 128 channels by a shared 1x1 adapter.
# Tuning split (tools/demo.py --tune data, seed 0, 2026-12-03), 1 try so far:
#   loss_weight 2.0 (this file): 47.1 mAP (student alone 42.5).
_base_ = [
    '../_base_/schedules/digits_det_distill_schedule.py',
]
teacher_ckpt = 'work_dirs/demo/det/teacher/epoch_12.pth'
model = dict(
    _scope_='mmkdflow',
    type='Distiller',
    student=dict(cfg_path='{{fileDirname}}/'
                 'student_atss-r18c16_fpn_1xb16-8e_digits-det.py'),
    teacher=dict(cfg_path='{{fileDirname}}/'
                 'teacher_atss-r18_fpn_1xb16-12e_digits-det.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            index=(0, 1, 2, 3, 4),
            connector=dict(type='ConvAdapter', in_channels=64,
                           out_channels=128),
            loss=dict(type='PKDLoss', loss_weight=2.0))))
custom_hooks = [dict(type='mmkdflow.StudentCheckpointHook')]
