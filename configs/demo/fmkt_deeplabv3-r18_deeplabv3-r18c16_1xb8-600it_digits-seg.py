# FM-KT segmentation flow on DigitsSeg [our extension, as
# ../fmkt/fmkt_deeplabv3-r101_deeplabv3-r18_4xb2-80k_cityscapes-512x1024.py]: Z
# is the student decode head's feature before conv_seg (decode_head.bottleneck,
# 32 channels at 1/8 resolution); a conv meta-encoder runs N = 4 rectified
# Euler steps (8 in the Cityscapes config; 4 for CPU time); every step's
# prediction goes through a per-pixel Linear(32, 11) and is matched to the
# teacher's segmentation logits with DIST (beta = gamma = 1, tau = 1, rows =
# pixels) plus per-pixel CE on the labels (class-weighted as the decode
# head's), weight 1 / N each. The mean logits replace the student's conv_seg
# output in training and inference; the student's own decode-head CE is off (no
# CE outside the flow). Same student, teacher, teacher checkpoint, pretrained
# backbone and schedule as
# cwd_deeplabv3-r18_deeplabv3-r18c16_1xb8-600it_digits-seg.py.
# Tuning: none yet (0 tries on the tuning split; the Cityscapes values).
_base_ = [
    '../_base_/datasets/digits_seg.py',
    '../_base_/schedules/digits_seg_schedule.py',
]
teacher_ckpt = 'work_dirs/demo/seg/teacher/iter_600.pth'
model = dict(
    _scope_='mmkdflow',
    type='Distiller',
    student=dict(
        cfg_path='{{fileDirname}}/'
        'student_deeplabv3-r18c16_1xb8-600it_digits-seg.py',
        decode_head=dict(loss_decode=dict(loss_weight=0.0))),
    teacher=dict(cfg_path='{{fileDirname}}/'
                 'teacher_deeplabv3-r18_1xb8-600it_digits-seg.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        flow=dict(
            student='decode_head.bottleneck',
            teacher='decode_head.conv_seg',
            replace='decode_head.conv_seg',
            connector=dict(
                type='FMKTLogitConnector',
                channels=32,
                meta_encoder='conv',
                num_steps=4,
                head_pool=False,
                num_classes=11,
                # the decode head's class-weighted CE, which the flow's CE
                # replaces (unweighted, it learned background only)
                class_weight=_base_.seg_class_weight,
                distance=dict(type='DISTLoss', beta=1.0, gamma=1.0,
                              tau=1.0)))))
# iter_N_student.pth: the student with its flow, as deployed
custom_hooks = [
    *_base_.safe_training_hooks,
    dict(type='mmkdflow.StudentCheckpointHook')
]
