# DiffKD, RTMDet-L -> RTMDet-S on COCO: the pair and schedule of
# cwd_rtmdet-l_rtmdet-s_8xb32-300e_coco.py (mmdet 3.3's RTMDet-S training,
# EMA, pipeline switch and distillation stop at epoch 280) with DiffKD
# instead of CWD. Not a published recipe; not run here.
# Knowledge diffusion on the three PAFPN outputs: the student's 128
# channels are projected to the teacher's 256 (latent_channels), one
# denoiser shared by the levels, 5 DDIM steps from timestep 400, adaptive
# noise matching; MSE between the denoised student and the teacher with
# weight 5 and lambda_1 = 1 for the diffusion loss, as DiffKD's COCO rows.
_base_ = ['../_base_/distill/rtmdet_s_coco.py']

model = dict(
    _base_.rtmdet_l_teacher,
    _scope_='mmkdflow',
    type='Distiller',
    student=dict(cfg_path='mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py'),
    distill_points=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            index=(0, 1, 2),
            connector=dict(
                type='DiffKDConnector',
                student_channels=128,
                teacher_channels=256,
                latent_channels=256,
                form='feature',
                share_across_levels=True,
                num_inference_steps=5,
                start_timestep=400,
                diff_loss_weight=1.0,
                kd_loss=dict(type='MSELoss', loss_weight=5.0)))))
find_unused_parameters = True
custom_hooks = [
    *_base_.safe_training_hooks, *_base_.rtmdet_hooks,
    dict(type='mmkdflow.StopDistillHook', stop_epoch=280),
    dict(type='mmkdflow.StudentCheckpointHook')
]
