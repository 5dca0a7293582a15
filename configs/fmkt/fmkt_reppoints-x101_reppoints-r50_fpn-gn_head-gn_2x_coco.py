# FM-KT (Shao et al., 2024), COCO detection, the DiffKD row RepPoints
# X101 -> R50 (configs/diffkd compares the same pair):
#   teacher RepPoints (moment) ResNeXt-101-32x4d DCN c3-c5, FPN-GN head-GN 2x
#           44.2 box AP (mmdet model zoo)
#   student RepPoints (moment) ResNet-50 FPN-GN head-GN 2x
#           38.6 box AP alone (model zoo)
#   FM-KT: no number taken from the paper (arXiv:2402.02012).
# Feature flow on the five FPN levels: one convnext flow per level, N = 4,
# PKD per step, w = 10 per level (the released one-stage weight) and 0 (no
# flow) on the last, the mean prediction replaces each other level, flow EMA
# 0.999.
_base_ = [
    'mmdet::reppoints/reppoints-moment_r50_fpn-gn_head-gn_2x_coco.py',
    '../_base_/distill/fmkt_fpn_coco.py'
]

teacher_ckpt = ('https://download.openmmlab.com/mmdetection/v2.0/reppoints/'
                'reppoints_moment_x101_fpn_dconv_c3-c5_gn-neck%2Bhead_2x_coco/'
                'reppoints_moment_x101_fpn_dconv_c3-c5_gn-neck%2Bhead_2x_coco_'
                '20200329-f87da1ea.pth')
model = dict(
    _base_.fmkt_fpn_distiller,
    _delete_=True,
    student=dict(cfg_path='mmdet::reppoints/'
                 'reppoints-moment_r50_fpn-gn_head-gn_2x_coco.py'),
    teacher=dict(
        cfg_path='mmdet::reppoints/'
        'reppoints-moment_x101-dconv-c3-c5_fpn-gn_head-gn_2x_coco.py'),
    teacher_ckpt=teacher_ckpt)
