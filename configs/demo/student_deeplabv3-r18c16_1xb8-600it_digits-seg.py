# Student for DigitsSeg: DeepLabV3, ResNetV1c-18 with 16 base channels. Its
# backbone starts from the DigitsCls pretraining of
# pretrain_deeplabv3-r18c16_1xb32-6e_digits-cls.py (tools/demo.py trains it
# once and points this path at it); so does the student of every method.
_base_ = [
    '../_base_/models/deeplabv3_r18_digits.py',
    '../_base_/datasets/digits_seg.py',
    '../_base_/schedules/digits_seg_schedule.py',
]
# Class-weighted CE: seg_class_weight of ../_base_/datasets/digits_seg.py
model = dict(
    data_preprocessor=dict(size=(64, 64)),  # the 64x64 DigitsSeg canvases
    backbone=dict(
        stem_channels=16,
        base_channels=16,
        init_cfg=dict(
            _delete_=True,  # the base model's init_cfg is None
            type='Pretrained',
            checkpoint='work_dirs/demo/seg/backbones/'
            'pretrain_deeplabv3-r18c16_1xb32-6e_digits-cls.pth',
            prefix='backbone.')),
    decode_head=dict(in_channels=128, channels=32,
                     loss_decode=dict(class_weight=_base_.seg_class_weight)))
