# Logit KD on DigitsSeg: channel-wise distillation (CWD, tau 1) on the
# decode head's segmentation logits.
# Tuning: none yet (0 tries on the tuning split, tools/demo.py --tune;
# every method gets the same number of tries).
_base_ = [
    '../_base_/datasets/digits_seg.py',
    '../_base_/schedules/digits_seg_schedule.py',
]
teacher_ckpt = 'work_dirs/demo/seg/teacher/iter_600.pth'
model = dict(
    _scope_='mmkdflow',
    type='Distiller',
    student=dict(cfg_path='{{fileDirname}}/'
                 'student_deeplabv3-r18c16_1xb8-600it_digits-seg.py'),
    teacher=dict(cfg_path='{{fileDirname}}/'
                 'teacher_deeplabv3-r18_1xb8-600it_digits-seg.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        logits=dict(
            student='decode_head.conv_seg',
            teacher='decode_head.conv_seg',
            loss=dict(type='ChannelWiseDivergence', tau=1.0,
                      loss_weight=3.0))))
custom_hooks = [
    *_base_.safe_training_hooks,
    dict(type='mmkdflow.StudentCheckpointHook')
]
