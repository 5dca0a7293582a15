# VGG-13 (BN) for CIFAR-100, the CRD zoo's 'vgg13': 9,462,180
# parameters with the 100-class head
# (tests/test_models/test_backbones/test_cifar_backbones.py).
# Named by cfg_path from the CIFAR-100 distillation configs.
default_scope = 'mmpretrain'
model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmkdflow.CIFARVGG', depth=13),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
