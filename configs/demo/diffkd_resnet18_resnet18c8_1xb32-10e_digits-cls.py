# DiffKD on DigitsCls: feature + logits, the ImageNet recipe of
# ../_base_/distill/diffkd_in1k.py on the digits. Same student, teacher,
# teacher checkpoint and schedule as
# kd_resnet18_resnet18c8_1xb32-10e_digits-cls.py.
#   feat   - the last backbone map before pooling (student 64 x 4 x 4,
#            teacher 256 x 4 x 4); the teacher is compressed by a linear
#            autoencoder to 128 channels (the 2x compression of the
#            ResNet-50 row), feature-form denoiser on that latent, MSE.
#   logits - the 10 class logits, vector-form (MLP) denoiser, no
#            autoencoder, KL divergence with temperature 1.
# 5 DDIM steps from timestep 400, lambda_1 = lambda_2 = lambda_3 = 1
# (Appendix B.2).
# Tuning: none yet (0 tries on the tuning split; the paper's values).
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
        feat=dict(
            student='backbone',
            teacher='backbone',
            index=0,
            connector=dict(
                type='DiffKDConnector',
                student_channels=64,
                teacher_channels=256,
                use_ae=True,
                ae_channels=128,
                form='feature',
                num_inference_steps=5,
                start_timestep=400,
                diff_loss_weight=1.0,
                ae_loss_weight=1.0,
                kd_loss=dict(type='MSELoss', loss_weight=1.0))),
        logits=dict(
            student='head.fc',
            teacher='head.fc',
            connector=dict(
                type='DiffKDConnector',
                student_channels=10,
                teacher_channels=10,
                form='vector',
                num_inference_steps=5,
                start_timestep=400,
                diff_loss_weight=1.0,
                kd_loss=dict(type='KDLoss', temperature=1.0,
                             loss_weight=1.0)))))
custom_hooks = [
    *_base_.safe_training_hooks,
    dict(type='mmkdflow.StudentCheckpointHook')
]
