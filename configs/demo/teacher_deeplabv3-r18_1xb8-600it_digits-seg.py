# Teacher for DigitsSeg: DeepLabV3, ResNetV1c-18 (64 base channels). Its
# backbone starts from the DigitsCls pretraining of
# pretrain_deeplabv3-r18_1xb32-6e_digits-cls.py (tools/demo.py trains it once
# and points this path at it), as the Cityscapes recipes start from ImageNet
# weights.
_base_ = [
    '../_base_/models/deeplabv3_r18_digits.py',
    '../_base_/datasets/digits_seg.py',
    '../_base_/schedules/digits_seg_schedule.py',
]
# Class-weighted CE: seg_class_weight of ../_base_/datasets/digits_seg.py
model = dict(
    data_preprocessor=dict(size=(64, 64)),  # the 64x64 DigitsSeg canvases
    backbone=dict(
        init_cfg=dict(
            _delete_=True,  # the base model's init_cfg is None
            type='Pretrained',
            checkpoint='work_dirs/demo/seg/backbones/'
            'pretrain_deeplabv3-r18_1xb32-6e_digits-cls.pth',
            prefix='backbone.')),
    decode_head=dict(loss_decode=dict(class_weight=_base_.seg_class_weight)))
