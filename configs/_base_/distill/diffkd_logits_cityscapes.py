# DiffKD distiller (R101 teacher, DIST on logits) of the Cityscapes rows.
_base_ = ['../default_runtime_distill.py']
teacher_ckpt = ('https://download.openmmlab.com/mmsegmentation/v0.5/'
                'deeplabv3/deeplabv3_r101-d8_512x1024_80k_cityscapes/'
                'deeplabv3_r101-d8_512x1024_80k_cityscapes_'
                '20200606_113503-9e428899.pth')
diffkd_logits_distiller = dict(
    _scope_='mmkdflow',
    type='Distiller',
    teacher=dict(cfg_path='mmseg::deeplabv3/'
                 'deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        logits=dict(
            student='decode_head.conv_seg',
            teacher='decode_head.conv_seg',
            # 19 channels at 1/8 resolution, per-pixel (vector) denoiser, no
            # autoencoder, 5 DDIM steps from timestep 400 (Appendix B.4)
            connector=dict(
                type='DiffKDConnector',
                student_channels=19,
                teacher_channels=19,
                form='vector',
                num_inference_steps=5,
                start_timestep=400,
                diff_loss_weight=1.0,
                kd_loss=dict(type='DISTLoss', beta=1.0, gamma=1.0, tau=1.0,
                             loss_weight=1.0)))))
custom_hooks = [
    *_base_.safe_training_hooks,
    dict(type='mmkdflow.StudentCheckpointHook')]
custom_imports = dict(imports=['mmkdflow'], allow_failed_imports=False)
