# CIFAR-style ResNet-18 (3x3 stem, no max-pool) for 32x32 DigitsCls.
base_channels = 32
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet_CIFAR',
        depth=18,
        stem_channels=base_channels,
        base_channels=base_channels,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=base_channels * 8,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))
