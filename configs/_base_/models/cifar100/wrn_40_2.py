# WRN-40-2 for CIFAR-100, the CRD zoo's 'wrn_40_2': 2,255,156
# parameters with the 100-class head
# (tests/test_models/test_backbones/test_cifar_backbones.py).
# Named by cfg_path from the CIFAR-100 distillation configs.
default_scope = 'mmpretrain'
model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmkdflow.CIFARWideResNet', depth=40, widen_factor=2),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
