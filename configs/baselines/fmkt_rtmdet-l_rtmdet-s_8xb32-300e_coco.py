# FM-KT, RTMDet-L -> RTMDet-S on COCO: the pair and schedule of
# cwd_rtmdet-l_rtmdet-s_8xb32-300e_coco.py (mmdet 3.3's RTMDet-S training,
# EMA, pipeline switch and distillation stop at epoch 280) with FM-KT's
# feature flow instead of CWD. Not a published recipe; not run here.
# One convnext flow per PAFPN output (128 channels), N = 4 Euler steps,
# PKD per step against the teacher level (256 channels, through the
# connector's 1x1 teacher_proj, loss only), w = 10 per level, as the FM-KT
# COCO recipes; the mean prediction replaces each level for the head, in
# training and inference. After epoch 280 the flow keeps running in the
# student's forward (as at inference) and trains through the detection
# loss alone. mmdet's EMAHook averages the flow with the student, so no
# ConnectorEMAHook.
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
            replace=True,
            connector=dict(
                type='FMKTFeatureConnector',
                channels=128,
                meta_encoder='convnext',
                num_steps=4,
                share_across_levels=False,
                level_weights=[10.0, 10.0, 10.0],
                teacher_proj=256,
                distance=dict(type='PKDLoss', loss_weight=1.0)))))
find_unused_parameters = True
custom_hooks = [
    *_base_.safe_training_hooks, *_base_.rtmdet_hooks,
    dict(type='mmkdflow.StopDistillHook', stop_epoch=280),
    # epoch_N_student.pth: the student with its (EMA) flow, as deployed
    dict(type='mmkdflow.StudentCheckpointHook')
]
