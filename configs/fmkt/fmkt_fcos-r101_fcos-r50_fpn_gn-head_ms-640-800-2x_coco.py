# FM-KT (Shao et al., 2024), COCO detection, the DiffKD row FCOS R101 -> R50
# (configs/diffkd compares the same pair):
#   teacher FCOS ResNet-101 (caffe) FPN GN-head, ms 640-800 2x
#           40.8 box AP (mmdet model zoo)
#   student FCOS ResNet-50 (caffe) FPN GN-head, ms 640-800 2x
#           38.5 box AP alone (model zoo)
#   FM-KT: no number taken from the paper (arXiv:2402.02012); DiffKD (paper):
#   38.5 -> 42.4.
# Both are caffe-style (BGR, std 1), so the student's data preprocessor serves
# the teacher too. Feature flow on the five FPN levels: one convnext flow per
# level, N = 4, PKD per step, w = 10 per level (the released one-stage
# weight; no FCOS recipe was released) and 0 (no flow) on the last, the mean
# prediction replaces each other level, flow EMA 0.999.
_base_ = [
    'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py',
    '../_base_/distill/fmkt_fpn_coco.py'
]

teacher_ckpt = ('https://download.openmmlab.com/mmdetection/v2.0/fcos/'
                'fcos_r101_caffe_fpn_gn-head_mstrain_640-800_2x_coco/'
                'fcos_r101_caffe_fpn_gn-head_mstrain_640-800_2x_coco-'
                '511424d6.pth')
model = dict(
    _base_.fmkt_fpn_distiller,
    _delete_=True,
    student=dict(cfg_path='mmdet::fcos/'
                 'fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py'),
    teacher=dict(cfg_path='mmdet::fcos/'
                 'fcos_r101-caffe_fpn_gn-head_ms-640-800-2x_coco.py'),
    teacher_ckpt=teacher_ckpt)
