# Teacher for the DigitsDet demo: RetinaNet, ResNet-18 (64 base channels),
# FPN 128. Its backbone starts from the DigitsCls pretraining of
# pretrain_retinanet-r18_1xb32-6e_digits-cls.py (tools/demo.py trains it once
# and points this path at it), as the COCO recipes start from ImageNet weights.
_base_ = [
    '../_base_/models/retinanet_r18_digits.py',
    '../_base_/datasets/digits_det.py',
    '../_base_/schedules/digits_det_schedule.py',
]
model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True,  # the base model's init_cfg is None
            type='Pretrained',
            checkpoint='work_dirs/demo/det/backbones/'
            'pretrain_retinanet-r18_1xb32-6e_digits-cls.pth',
            prefix='backbone.')))
