# Student of the DigitsDet demo trained alone: RetinaNet, ResNet-18 with 16
# base channels, FPN 64 (about 1/10 of the teacher's FLOPs).
_base_ = [
    '../_base_/models/retinanet_r18_digits.py',
    '../_base_/schedules/digits_det_distill_schedule.py',
]
model = dict(
    backbone=dict(base_channels=16),
    neck=dict(in_channels=[32, 64, 128], out_channels=64),
    bbox_head=dict(in_channels=64, feat_channels=64))
