# Teacher for the DigitsDet demo: RetinaNet, ResNet-18 (64 base channels),
# FPN 128. Its backbone starts from the DigitsCls pretraining of
# retinanet_r18_digits_backbone.py (tools/demo.py trains it once and points
# this path at it), as the COCO recipes start from ImageNet weights.
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
            'retinanet_r18_digits_backbone.pth',
            prefix='backbone.')))
