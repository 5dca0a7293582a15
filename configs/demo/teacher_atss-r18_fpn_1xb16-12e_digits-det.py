# Teacher for the DigitsDet demo: ATSS, ResNet-18 (64 base channels), FPN
# 128, three levels (48.3 mAP on the tuning split, seed 0; 52.2 with the
# five levels of RetinaNet). Its backbone starts from the DigitsCls
# pretraining of
# pretrain_atss-r18_1xb32-6e_digits-cls.py (tools/demo.py trains it once
# and points this path at it), as the COCO recipes start from ImageNet weights.
_base_ = [
    '../_base_/models/atss_r18_digits.py',
    '../_base_/datasets/digits_det.py',
    '../_base_/schedules/digits_det_schedule.py',
]
model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True,  # the base model's init_cfg is None
            type='Pretrained',
            checkpoint='work_dirs/demo/det/backbones/'
            'pretrain_atss-r18_1xb32-6e_digits-cls.pth',
            prefix='backbone.')))
