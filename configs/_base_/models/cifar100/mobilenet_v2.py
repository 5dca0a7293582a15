# MobileNetV2 (width 0.5) for CIFAR-100, the CRD zoo's 'MobileNetV2': 812,836
# parameters with the 100-class head
# (tests/test_models/test_backbones/test_cifar_backbones.py).
# Named by cfg_path from the CIFAR-100 distillation configs.
default_scope = 'mmpretrain'
model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmkdflow.CIFARMobileNetV2', widen_factor=0.5),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=1280,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
