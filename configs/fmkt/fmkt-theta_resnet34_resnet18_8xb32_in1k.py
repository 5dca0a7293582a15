# FM-KT-Theta (Shao et al., 2024), ImageNet-1k, no inference cost:
#   teacher ResNet-34  73.62 top-1 (mmpretrain model zoo)
#   student ResNet-18  69.90 top-1 alone (model zoo), 100-epoch recipe
#   FM-KT-Theta: no ImageNet number taken from the paper (arXiv:2402.02012).
# The flow of fmkt_resnet34_resnet18_8xb32_in1k.py (transformer meta-encoder, N
# = 8, DIST + CE per step, weight 1 / N) is trained beside the student, and the
# student's own classifier fc0(Z) learns from the flow's mean logits:
# loss_theta = DIST(fc0(Z), stopgrad(mean_i fc(Xhat_i))), plus the student's
# own CE(fc0(Z), y) (student_loss_weight=1). fc0(Z) is never replaced, so the
# deployed model is the vanilla ResNet-18 (exported without mmkdflow).
_base_ = './fmkt_resnet34_resnet18_8xb32_in1k.py'

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
