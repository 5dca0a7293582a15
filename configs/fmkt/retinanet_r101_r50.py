# FM-KT (Shao et al., 2024), COCO detection, the DiffKD row RetinaNet
# R101 -> R50 (configs/diffkd compares the same pair):
#   teacher RetinaNet ResNet-101 FPN 2x  38.9 box AP (mmdet model zoo)
#   student RetinaNet ResNet-50 FPN 2x   37.4 box AP alone (model zoo)
#   FM-KT: no number in our paper summary; DiffKD (paper): 37.4 -> 39.7.
# Feature flow on the five FPN levels as in retinanet_x101_r50.py: shared
# convnext meta-encoder, N = 4, PKD per step, w = 10 per level, 0 on P7, the
# mean prediction replaces each level, flow EMA 0.999.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'

teacher_ckpt = ('https://download.openmmlab.com/mmdetection/v2.0/retinanet/'
                'retinanet_r101_fpn_2x_coco/'
                'retinanet_r101_fpn_2x_coco_20200131-5560aee8.pth')
model = dict(
    _delete_=True,
    _scope_='mmkdflow',
    type='OfflineDistiller',
    student=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_r101_fpn_2x_coco.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            index=(0, 1, 2, 3, 4),
            replace=True,
            connector=dict(
                type='FMKTConnector',
                channels=256,
                meta_encoder='convnext',
                num_steps=4,
                level_weights=[10.0, 10.0, 10.0, 10.0, 0.0],
                distance=dict(type='PKDLoss', loss_weight=1.0)))))
custom_hooks = [dict(type='mmkdflow.ConnectorEMAHook', decay=0.999)]
custom_imports = dict(imports=['mmkdflow'], allow_failed_imports=False)
