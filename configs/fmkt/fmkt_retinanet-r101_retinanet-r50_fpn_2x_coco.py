# FM-KT (Shao et al., 2024), COCO detection, the DiffKD row RetinaNet
# R101 -> R50 (configs/diffkd compares the same pair):
#   teacher RetinaNet ResNet-101 FPN 2x  38.9 box AP (mmdet model zoo)
#   student RetinaNet ResNet-50 FPN 2x   37.4 box AP alone (model zoo)
#   FM-KT: no number taken from the paper (arXiv:2402.02012); DiffKD (paper):
#   37.4 -> 39.7.
# Feature flow on the five FPN levels as in
# fmkt_retinanet-x101_retinanet-r50_fpn_2x_coco.py: one convnext flow per
# level, N = 4, PKD per step, w = 10 per level, 0 (no flow) on P7, the mean
# prediction replaces each other level, flow EMA 0.999.
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py',
    '../_base_/distill/fmkt_fpn_coco.py'
]

teacher_ckpt = ('https://download.openmmlab.com/mmdetection/v2.0/retinanet/'
                'retinanet_r101_fpn_2x_coco/'
                'retinanet_r101_fpn_2x_coco_20200131-5560aee8.pth')
model = dict(
    _base_.fmkt_fpn_distiller,
    _delete_=True,
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_r101_fpn_2x_coco.py'),
    teacher_ckpt=teacher_ckpt)
