# DiffKD (Huang et al., NeurIPS 2023), Table 4, COCO val, baseline teacher:
#   T: FCOS-R101 40.8 AP   S: FCOS-R50 38.5 AP
#   DiffKD 42.4 AP (MSE); dagger (attention MSE) 42.5 AP.
# Teacher weights: mmdet model zoo fcos_r101-caffe_fpn_gn-head_ms-640-800-2x
# (40.8 box AP); the student is the matching R50 recipe (38.5 box AP). Both
# use caffe-style ResNets, hence the same data preprocessor.
# Knowledge diffusion on the five FPN levels (P3-P7, 256 channels, no
# autoencoder, one shared denoiser), MSE with weight 5 (Appendix B.3); the
# student's data pipeline (multi-scale 640-800), optimiser and 2x schedule
# are mmdet's own.
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py'

teacher_ckpt = (
    'https://download.openmmlab.com/mmdetection/v2.0/fcos/'
    'fcos_r101_caffe_fpn_gn-head_mstrain_640-800_2x_coco/'
    'fcos_r101_caffe_fpn_gn-head_mstrain_640-800_2x_coco-511424d6.pth')
model = dict(
    _delete_=True,
    _scope_='mmkdflow',
    type='OfflineDistiller',
    student=dict(cfg_path='mmdet::fcos/'
                 'fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py'),
    teacher=dict(cfg_path='mmdet::fcos/'
                 'fcos_r101-caffe_fpn_gn-head_ms-640-800-2x_coco.py'),
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
