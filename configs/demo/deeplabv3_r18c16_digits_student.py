# Student for DigitsSeg: DeepLabV3, ResNetV1c-18 with 16 base channels.
_base_ = [
    '../_base_/models/deeplabv3_r18_digits.py',
    '../_base_/datasets/digits_seg.py',
    '../_base_/schedules/digits_seg_schedule.py',
]
model = dict(
    backbone=dict(stem_channels=16, base_channels=16),
    decode_head=dict(in_channels=128, channels=32))
