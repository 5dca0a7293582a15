# FM-KT-Theta (Shao et al., 2024), ImageNet-1k, no inference cost:
#   teacher ResNet-50    76.55 top-1 (mmpretrain model zoo)
#   student MobileNetV1  (mmkdflow.MobileNetV1), ResNet-18's 100-epoch recipe
#   FM-KT-Theta: no ImageNet number taken from the paper (arXiv:2402.02012).
# The flow of fmkt_resnet50_mobilenet-v1_8xb32_in1k.py is trained beside the
# student and the student's own classifier learns from its mean logits:
# loss_theta = DIST(fc0(Z), stopgrad(mean_i fc(Xhat_i))) plus the student's
# own CE (student_loss_weight=1). The deployed model is the vanilla
# MobileNetV1 classifier.
_base_ = './fmkt_resnet50_mobilenet-v1_8xb32_in1k.py'

model = dict(
    student_loss_weight=1.0,
    distill_points=dict(
        flow=dict(connector=dict(theta=True, theta_weight=1.0))))
# fc0(Z) and the flow both get gradients: no unused parameters under DDP
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=False)
custom_hooks = [
    *_base_.safe_training_hooks,
    dict(type='mmkdflow.StudentCheckpointHook')
]
