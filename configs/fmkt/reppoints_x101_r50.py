# FM-KT (Shao et al., 2024), COCO detection, the DiffKD row RepPoints
# X101 -> R50 (configs/diffkd compares the same pair):
#   teacher RepPoints (moment) ResNeXt-101-32x4d DCN c3-c5, FPN-GN head-GN 2x
#           44.2 box AP (mmdet model zoo)
#   student RepPoints (moment) ResNet-50 FPN-GN head-GN 2x
#           38.6 box AP alone (model zoo)
#   FM-KT: no number in our paper summary.
# Feature flow on the five FPN levels: shared convnext meta-encoder, N = 4,
# PKD per step, w = 10 per level (the released one-stage weight) and 0 on the
# last, the mean prediction replaces each level, flow EMA 0.999.
_base_ = 'mmdet::reppoints/reppoints-moment_r50_fpn-gn_head-gn_2x_coco.py'

teacher_ckpt = ('https://download.openmmlab.com/mmdetection/v2.0/reppoints/'
                'reppoints_moment_x101_fpn_dconv_c3-c5_gn-neck%2Bhead_2x_coco/'
                'reppoints_moment_x101_fpn_dconv_c3-c5_gn-neck%2Bhead_2x_coco_'
                '20200329-f87da1ea.pth')
model = dict(
    _delete_=True,
    _scope_='mmkdflow',
    type='OfflineDistiller',
    student=dict(cfg_path='mmdet::reppoints/'
                 'reppoints-moment_r50_fpn-gn_head-gn_2x_coco.py'),
    teacher=dict(
        cfg_path='mmdet::reppoints/'
        'reppoints-moment_x101-dconv-c3-c5_fpn-gn_head-gn_2x_coco.py'),
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
