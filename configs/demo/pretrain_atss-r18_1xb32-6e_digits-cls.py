# Backbone pretraining for the DigitsDet teacher: the teacher's ResNet-18
# (mmdet ResNet, 64 base channels, exactly the config of
# ../_base_/models/retinanet_r18_digits.py, which atss_r18_digits.py
# reuses) as an image classifier on
# DigitsCls, with the detector's input normalisation. tools/demo.py trains it
# once, caches it (reused while this config is unchanged) and points the
# detectors' backbone init_cfg at its checkpoint.
_base_ = [
    '../_base_/models/retinanet_r18_digits.py',
    '../_base_/schedules/digits_backbone_pretrain_schedule.py',
]
model = dict(
    _delete_=True,
    _scope_='mmpretrain',
    type='ImageClassifier',
    data_preprocessor=dict(
        num_classes=10,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(_base_.model.backbone, type='mmdet.ResNet',
                  out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=_base_.model.backbone.base_channels * 8,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))
