# Teacher for DigitsSeg: DeepLabV3, ResNetV1c-18 (64 base channels).
_base_ = [
    '../_base_/models/deeplabv3_r18_digits.py',
    '../_base_/datasets/digits_seg.py',
    '../_base_/schedules/digits_seg_schedule.py',
]
