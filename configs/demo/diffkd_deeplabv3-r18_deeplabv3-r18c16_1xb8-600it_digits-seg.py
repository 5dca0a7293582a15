# DiffKD on DigitsSeg: knowledge diffusion on the decode head's segmentation
# logits with DIST, the Cityscapes recipe of
# ../_base_/distill/diffkd_logits_cityscapes.py on the digits: a vector-form
# denoiser (per-pixel 1x1 MLP) on the 11 logit channels at 1/8 resolution,
# no autoencoder, adaptive noise matching, 5 DDIM steps from timestep 400,
# DIST (beta = gamma = 1, tau = 1, one row per pixel) between the denoised
# student and the teacher logits, lambda_1 = lambda_3 = 1 (Appendix B.4).
# Same student, teacher, teacher checkpoint, pretrained backbone and
# schedule as cwd_deeplabv3-r18_deeplabv3-r18c16_1xb8-600it_digits-seg.py.
# Tuning: none yet (0 tries on the tuning split; the paper's values).
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
            connector=dict(
                type='DiffKDConnector',
                student_channels=11,
                teacher_channels=11,
                form='vector',
                num_inference_steps=5,
                start_timestep=400,
                diff_loss_weight=1.0,
                kd_loss=dict(type='DISTLoss', beta=1.0, gamma=1.0, tau=1.0,
                             loss_weight=1.0)))))
custom_hooks = [
    *_base_.safe_training_hooks,
    dict(type='mmkdflow.StudentCheckpointHook')
]
