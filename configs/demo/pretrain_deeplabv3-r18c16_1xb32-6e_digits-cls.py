# Backbone pretraining for the DigitsSeg student: the student's ResNetV1c-18
# with 16 stem and base channels
# (student_deeplabv3-r18c16_1xb8-600it_digits-seg.py), as
# pretrain_deeplabv3-r18_1xb32-6e_digits-cls.py does for the teacher.
_base_ = './pretrain_deeplabv3-r18_1xb32-6e_digits-cls.py'
model = dict(backbone=dict(stem_channels=16, base_channels=16),
             head=dict(in_channels=128))
