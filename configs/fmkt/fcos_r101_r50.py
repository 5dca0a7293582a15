# FM-KT (Shao et al., 2024), COCO detection, the DiffKD row FCOS R101 -> R50
# (configs/diffkd compares the same pair):
#   teacher FCOS ResNet-101 (caffe) FPN GN-head, ms 640-800 2x
#           40.8 box AP (mmdet model zoo)
#   student FCOS ResNet-50 (caffe) FPN GN-head, ms 640-800 2x
#           38.5 box AP alone (model zoo)
#   FM-KT: no number in our paper summary; DiffKD (paper): 38.5 -> 42.4.
# Both are caffe-style (BGR, std 1), so the student's data preprocessor serves
# the teacher too. Feature flow on the five FPN levels: shared convnext
# meta-encoder, N = 4, PKD per step, w = 10 per level (the released one-stage
# weight; no FCOS recipe was released) and 0 on the last, the mean prediction
# replaces each level, flow EMA 0.999.
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py'

teacher_ckpt = ('https://download.openmmlab.com/mmdetection/v2.0/fcos/'
                'fcos_r101_caffe_fpn_gn-head_mstrain_640-800_2x_coco/'
                'fcos_r101_caffe_fpn_gn-head_mstrain_640-800_2x_coco-'
                '511424d6.pth')
model = dict(
    _delete_=True,
    _scope_='mmkdflow',
    type='OfflineDistiller',
    student=dict(cfg_path='mmdet::fcos/'
                 'fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py'),
    teacher=dict(cfg_path='mmdet::fcos/'
                 'fcos_r101-caffe_fpn_gn-head_ms-640-800-2x_coco.py'),
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
