# Teacher for the DigitsDet demo: RetinaNet, ResNet-18 (64 base channels),
# FPN 128, trained from scratch.
_base_ = [
    '../_base_/models/retinanet_r18_digits.py',
    '../_base_/datasets/digits_det.py',
    '../_base_/schedules/digits_det_schedule.py',
]
