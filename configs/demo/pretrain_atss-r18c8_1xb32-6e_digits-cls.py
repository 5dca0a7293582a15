# Backbone pretraining for the DigitsDet student: the student's ResNet-18
# with 8 base channels (student_atss-r18c8_fpn_1xb16-8e_digits-det.py),
# as pretrain_atss-r18_1xb32-6e_digits-cls.py does for the teacher.
_base_ = './pretrain_atss-r18_1xb32-6e_digits-cls.py'
model = dict(backbone=dict(base_channels=8), head=dict(in_channels=64))
