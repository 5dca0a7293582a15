# Backbone pretraining for the DigitsDet student: the student's ResNet-18
# with 16 base channels (student_atss-r18c16_fpn_1xb16-8e_digits-det.py),
# as pretrain_atss-r18_1xb32-6e_digits-cls.py does for the teacher.
_base_ = './pretrain_atss-r18_1xb32-6e_digits-cls.py'
model = dict(backbone=dict(base_channels=16), head=dict(in_channels=128))
