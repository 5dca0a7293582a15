# Student of the DigitsDet demo trained alone: ATSS, ResNet-18 with 8 base
# channels (an eighth of the teacher's width), FPN 64. Its backbone
# starts from the DigitsCls pretraining of
# pretrain_atss-r18c8_1xb32-6e_digits-cls.py (tools/demo.py trains it
# once and points this path at it); so does the student of every method.
_base_ = [
    '../_base_/models/atss_r18_digits.py',
    '../_base_/schedules/digits_det_distill_schedule.py',
]
model = dict(
    backbone=dict(
        base_channels=8,
        init_cfg=dict(
            _delete_=True,  # the base model's init_cfg is None
            type='Pretrained',
            checkpoint='work_dirs/demo/det/backbones/'
            'pretrain_atss-r18c8_1xb32-6e_digits-cls.pth',
            prefix='backbone.')),
    neck=dict(in_channels=[16, 32, 64], out_channels=64),
    bbox_head=dict(in_channels=64, feat_channels=64))
