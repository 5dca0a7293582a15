# DiffKD (Huang et al., NeurIPS 2023), Table 4, COCO val, baseline teacher:
#   T: Faster RCNN-R101 39.8 AP   S: Faster RCNN-R50 38.4 AP
#   DiffKD 40.6 AP (MSE); dagger (attention MSE) 40.7 AP.
# Teacher weights: mmdet model zoo faster-rcnn_r101_fpn_2x_coco (39.8 box AP).
# Knowledge diffusion on the five FPN levels (P2-P6, 256 channels, no
# autoencoder, one shared denoiser), MSE with weight 5 (Appendix B.3); the
# student's data pipeline, optimiser and 2x schedule are mmdet's own.
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py',
    '../_base_/distill/diffkd_fpn_coco.py'
]

teacher_ckpt = ('https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/'
                'faster_rcnn_r101_fpn_2x_coco/'
                'faster_rcnn_r101_fpn_2x_coco_bbox_mAP-0.398_'
                '20200504_210455-1d2dac9c.pth')
model = dict(
    _base_.diffkd_fpn_distiller,
    _delete_=True,
    student=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py'),
    teacher=dict(
        cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py'),
    teacher_ckpt=teacher_ckpt)
