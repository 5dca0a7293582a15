# Backbone pretraining for the DigitsSeg student: the student's ResNetV1c-18
# with 16 stem and base channels (deeplabv3_r18c16_digits_student.py), as
# deeplabv3_r18_digits_backbone.py does for the teacher.
_base_ = './deeplabv3_r18_digits_backbone.py'
model = dict(backbone=dict(stem_channels=16, base_channels=16),
             head=dict(in_channels=128))
