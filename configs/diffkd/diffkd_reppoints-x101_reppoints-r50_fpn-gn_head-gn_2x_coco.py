# DiffKD (Huang et al., NeurIPS 2023), Table 5, COCO val, stronger teacher:
#   T: RepPoints-X101 44.2 AP   S: RepPoints-R50 38.6 AP
#   DiffKD 41.7 AP (MSE); dagger (attention MSE) 41.9 AP.
# Teacher weights: mmdet model zoo
# reppoints-moment_x101-dconv-c3-c5_fpn-gn_head-gn_2x_coco (44.2 box AP);
# the student is reppoints-moment_r50_fpn-gn_head-gn_2x_coco (38.6 box AP).
# Knowledge diffusion on the five FPN levels (P3-P7, 256 channels, no
# autoencoder, one shared denoiser), MSE with weight 15 (Appendix B.3: the
# weight keeps RepPoints' loss in the range of Faster R-CNN's); the student's
# data pipeline, optimiser and 2x schedule are mmdet's own.
_base_ = [
    'mmdet::reppoints/reppoints-moment_r50_fpn-gn_head-gn_2x_coco.py',
    '../_base_/distill/diffkd_fpn_coco.py'
]

teacher_ckpt = (
    'https://download.openmmlab.com/mmdetection/v2.0/reppoints/'
    'reppoints_moment_x101_fpn_dconv_c3-c5_gn-neck%2Bhead_2x_coco/'
    'reppoints_moment_x101_fpn_dconv_c3-c5_gn-neck%2Bhead_2x_coco_'
    '20200329-f87da1ea.pth')
model = dict(
    _base_.diffkd_fpn_distiller,
    _delete_=True,
    student=dict(cfg_path='mmdet::reppoints/'
                 'reppoints-moment_r50_fpn-gn_head-gn_2x_coco.py'),
    teacher=dict(cfg_path='mmdet::reppoints/reppoints-moment_x101-dconv-'
                 'c3-c5_fpn-gn_head-gn_2x_coco.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        fpn=dict(
            _base_.diffkd_fpn_distiller.distill_points.fpn,
            connector=dict(
                _base_.diffkd_fpn_distiller.distill_points.fpn.connector,
                kd_loss=dict(type='MSELoss', loss_weight=15.0)))))
