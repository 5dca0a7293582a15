# DiffKD (Huang et al., NeurIPS 2023), Table 5, COCO val, stronger teacher:
#   T: Cascade Mask RCNN-X101 45.6 AP   S: Faster RCNN-R50 38.4 AP
#   DiffKD 42.2 AP (MSE); dagger (attention MSE) 42.4 AP.
# Teacher weights: mmdet model zoo cascade-mask-rcnn_x101-64x4d_fpn_20e_coco
# (45.6 box AP). Only the teacher's backbone and FPN run (its cascade and
# mask heads are never evaluated during distillation).
# Knowledge diffusion on the five FPN levels (P2-P6, 256 channels, the same
# strides in both detectors; no autoencoder, one shared denoiser), MSE with
# weight 5 (Appendix B.3); the student's data pipeline, optimiser and 2x
# schedule are mmdet's own.
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py',
    '../_base_/distill/diffkd_fpn_coco.py'
]

teacher_ckpt = (
    'https://download.openmmlab.com/mmdetection/v2.0/cascade_rcnn/'
    'cascade_mask_rcnn_x101_64x4d_fpn_20e_coco/'
    'cascade_mask_rcnn_x101_64x4d_fpn_20e_coco_20200512_161033-bdb5126a.pth')
model = dict(
    _base_.diffkd_fpn_distiller,
    _delete_=True,
    student=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py'),
    teacher=dict(cfg_path='mmdet::cascade_rcnn/'
                 'cascade-mask-rcnn_x101-64x4d_fpn_20e_coco.py'),
    teacher_ckpt=teacher_ckpt,
    teacher_forward='extract_feat')
