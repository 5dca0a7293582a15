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
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py',
    '../_base_/distill/diffkd_fpn_coco.py'
]

teacher_ckpt = ('https://download.openmmlab.com/mmdetection/v2.0/retinanet/'
                'retinanet_r101_fpn_2x_coco/'
                'retinanet_r101_fpn_2x_coco_20200131-5560aee8.pth')
model = dict(
    _base_.diffkd_fpn_distiller,
    _delete_=True,
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_r101_fpn_2x_coco.py'),
    teacher_ckpt=teacher_ckpt)
