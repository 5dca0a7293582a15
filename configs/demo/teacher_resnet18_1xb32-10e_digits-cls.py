# Teacher for DigitsCls: CIFAR ResNet-18 with 32 base channels.
_base_ = [
    '../_base_/models/resnet18_cifar_digits.py',
    '../_base_/datasets/digits_cls.py',
    '../_base_/schedules/digits_cls_schedule.py',
]
