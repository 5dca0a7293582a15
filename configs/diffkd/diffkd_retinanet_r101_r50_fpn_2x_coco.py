# DiffKD (Huang et al., NeurIPS 2023), Table 4, COCO val, baseline teacher:
#   T: RetinaNet-R101 38.9 AP   S: RetinaNet-R50 37.4 AP
#   DiffKD 39.7 AP (MSE); dagger (attention MSE) 39.8 AP.
# Teacher weights: mmdet model zoo retinanet_r101_fpn_2x_coco (38.9 box AP).
# Knowledge diffusion on the five FPN levels (P3-P7, 256 channels, no
# autoencoder): one denoiser shared by all levels (0.21 M parameters),
# 5 DDIM steps from timestep 400, adaptive noise matching; MSE between the
# denoised student and the teacher with weight 5 (paper, Appendix B.3),
# lambda_1 = 1 for the diffusion loss. The student's data pipeline,
# optimiser and 2x schedule are mmdet's own (inherited below).
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'

teacher_ckpt = ('https://download.openmmlab.com/mmdetection/v2.0/retinanet/'
                'retinanet_r101_fpn_2x_coco/'
                'retinanet_r101_fpn_2x_coco_20200131-5560aee8.pth')
model = dict(
    _delete_=True,
    _scope_='mmkdflow',
    type='OfflineDistiller',
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_r101_fpn_2x_coco.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            index=(0, 1, 2, 3, 4),
            connector=dict(
                type='DiffKDConnector',
                student_channels=256,
                teacher_channels=256,
                form='feature',
                share_across_levels=True,
                num_inference_steps=5,
                start_timestep=400,
                diff_loss_weight=1.0,
                kd_loss=dict(type='MSELoss', loss_weight=5.0)))))
custom_hooks = [dict(type='mmkdflow.StudentCheckpointHook')]
custom_imports = dict(imports=['mmkdflow'], allow_failed_imports=False)
