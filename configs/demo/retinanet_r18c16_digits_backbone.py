# Backbone pretraining for the DigitsDet student: the student's ResNet-18
# with 16 base channels (retinanet_r18c16_digits_student.py), as
# retinanet_r18_digits_backbone.py does for the teacher.
_base_ = './retinanet_r18_digits_backbone.py'
model = dict(backbone=dict(base_channels=16), head=dict(in_channels=128))
