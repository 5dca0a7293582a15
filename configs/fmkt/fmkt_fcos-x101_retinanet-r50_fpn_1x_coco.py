# FM-KT (Shao et al., 2024), COCO detection, heterogeneous detectors:
#   teacher FCOS ResNeXt-101-64x4d FPN GN-head, ms 640-800 2x
#           42.6 box AP (mmdet model zoo)
#   student RetinaNet ResNet-50 FPN 1x  36.5 box AP alone (model zoo)
#   FM-KT: no number taken from the paper (arXiv:2402.02012).
# Both detectors read ImageNet-normalised RGB inputs (pytorch-style
# backbones), so the student's data preprocessor serves the teacher too.
# Feature flow on the five FPN levels: one conv_det flow per level (the
# released FCOS -> RetinaNet recipe), N = 4, PKD per step, w = 10 per level
# and 0 (no flow) on the last, the mean prediction replaces each other level,
# flow EMA 0.999.
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    '../_base_/distill/fmkt_fpn_coco.py'
]

teacher_ckpt = ('https://download.openmmlab.com/mmdetection/v2.0/fcos/'
                'fcos_x101_64x4d_fpn_gn-head_mstrain_640-800_2x_coco/'
                'fcos_x101_64x4d_fpn_gn-head_mstrain_640-800_2x_coco-'
                'ede514a8.pth')
model = dict(
    _base_.fmkt_fpn_distiller,
    _delete_=True,
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'),
    teacher=dict(cfg_path='mmdet::fcos/'
                 'fcos_x101-64x4d_fpn_gn-head_ms-640-800-2x_coco.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        fpn=dict(
            _base_.fmkt_fpn_distiller.distill_points.fpn,
            connector=dict(
                _base_.fmkt_fpn_distiller.distill_points.fpn.connector,
                meta_encoder='conv_det'))))
