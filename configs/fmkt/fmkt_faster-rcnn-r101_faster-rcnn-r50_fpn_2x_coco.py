# FM-KT (Shao et al., 2024), COCO detection, two-stage:
#   teacher Faster R-CNN ResNet-101 FPN 2x  39.8 box AP (mmdet model zoo)
#   student Faster R-CNN ResNet-50 FPN 2x   38.4 box AP alone (model zoo)
#   FM-KT: no number taken from the paper (arXiv:2402.02012); DiffKD (paper,
#   same pair):
#   38.4 -> 40.6.
# Feature flow on the five FPN levels (RPN and RoI head read the refined
# levels): one convnext flow per level (as released), N = 4, PKD per step,
# w = 6 per level (the released Faster R-CNN weight); the last level has
# weight 0 and no flow (its raw feature is used), flow EMA 0.999.
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py',
    '../_base_/distill/fmkt_fpn_coco.py'
]

teacher_ckpt = ('https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/'
                'faster_rcnn_r101_fpn_2x_coco/faster_rcnn_r101_fpn_2x_coco_'
                'bbox_mAP-0.398_20200504_210455-1d2dac9c.pth')
model = dict(
    _base_.fmkt_fpn_distiller,
    _delete_=True,
    student=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py'),
    teacher=dict(
        cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        fpn=dict(
            _base_.fmkt_fpn_distiller.distill_points.fpn,
            connector=dict(
                _base_.fmkt_fpn_distiller.distill_points.fpn.connector,
                level_weights=[6.0, 6.0, 6.0, 6.0, 0.0]))))
