# FM-KT-Theta on DigitsCls, as
# ../fmkt/fmkt-theta_resnet34_resnet18_8xb32_in1k.py: the logit flow of
# fmkt_resnet18_resnet18c8_1xb32-10e_digits-cls.py is trained beside the
# student, and the student's own classifier fc0(Z) learns from the flow's
# stop-gradient mean logits (loss_theta, weight 1) plus its own CE
# (student_loss_weight=1). fc0(Z) is never replaced, so the deployed model is
# the vanilla student (exported without mmkdflow). Same student, teacher,
# teacher checkpoint and schedule as
# kd_resnet18_resnet18c8_1xb32-10e_digits-cls.py.
# Tuning: none yet (0 tries on the tuning split).
_base_ = './fmkt_resnet18_resnet18c8_1xb32-10e_digits-cls.py'

model = dict(
    student_loss_weight=1.0,
    distill_points=dict(
        flow=dict(connector=dict(theta=True, theta_weight=1.0))))
custom_hooks = [
    *_base_.safe_training_hooks,
    dict(type='mmkdflow.StudentCheckpointHook')
]
