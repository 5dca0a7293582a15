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
_base_ = [
    'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py',
    '../_base_/distill/diffkd_fpn_coco.py'
]

teacher_ckpt = (
    'https://download.openmmlab.com/mmdetection/v2.0/fcos/'
    'fcos_r101_caffe_fpn_gn-head_mstrain_640-800_2x_coco/'
    'fcos_r101_caffe_fpn_gn-head_mstrain_640-800_2x_coco-511424d6.pth')
model = dict(
    _base_.diffkd_fpn_distiller,
    _delete_=True,
    student=dict(cfg_path='mmdet::fcos/'
                 'fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py'),
    teacher=dict(cfg_path='mmdet::fcos/'
                 'fcos_r101-caffe_fpn_gn-head_ms-640-800-2x_coco.py'),
    teacher_ckpt=teacher_ckpt)
