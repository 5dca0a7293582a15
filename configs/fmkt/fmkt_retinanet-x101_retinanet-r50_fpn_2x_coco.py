# FM-KT (Shao et al., 2024), COCO detection, the users' first example:
#   teacher RetinaNet ResNeXt-101-64x4d FPN 1x   41.0 box AP (mmdet model zoo)
#   student RetinaNet ResNet-50 FPN 2x           37.4 box AP alone (model zoo)
#   FM-KT: no COCO number for this row taken from the paper (arXiv:2402.02012);
#   the DiffKD row on the same pair reports 37.4 -> 40.7.
# Feature flow on the five FPN levels: one convnext flow per level (as
# released; share_across_levels=True shares one), rectified flow, N = 4 Euler
# steps in training and test, PKD between every step's prediction and the
# teacher level with weight w / N, w = 10 per level and 0 on the last (P7),
# which has no flow: its raw feature goes to the head. The mean prediction
# replaces each other student level for the student's head, in training and
# inference (the flow is part of the deployed detector:
# tools/export_student.py writes it). Every flow starts as the identity (the
# head first sees the raw levels). The flow is evaluated with its EMA (decay
# 0.999).
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py',
    '../_base_/distill/fmkt_fpn_coco.py'
]

teacher_ckpt = ('https://download.openmmlab.com/mmdetection/v2.0/retinanet/'
                'retinanet_x101_64x4d_fpn_1x_coco/'
                'retinanet_x101_64x4d_fpn_1x_coco_20200130-366f5af1.pth')
model = dict(
    _base_.fmkt_fpn_distiller,
    _delete_=True,
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'),
    teacher=dict(
        cfg_path='mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        fpn=dict(
            _base_.fmkt_fpn_distiller.distill_points.fpn,
            connector=dict(
                _base_.fmkt_fpn_distiller.distill_points.fpn.connector,
                schedule='rectified'))))
