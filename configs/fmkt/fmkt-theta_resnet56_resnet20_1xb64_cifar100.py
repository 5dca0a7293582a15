# FM-KT-Theta (Shao et al., 2024), CIFAR-100 top-1, no inference cost:
#   ResNet-56 -> ResNet-20: no paper number taken here (arXiv:2402.02012).
# The flow of fmkt_resnet56_resnet20_1xb64_cifar100.py (transformer
# meta-encoder, N = 8, DIST + CE per step, weight 1 / N) is trained beside
# the student, and the student's own classifier fc0(Z) learns from the
# flow's mean logits: loss_theta = DIST(fc0(Z), stopgrad(mean_i
# fc(Xhat_i))), plus the student's own CE(fc0(Z), y)
# (student_loss_weight=1). fc0(Z) is never replaced, so the deployed model
# is the vanilla ResNet-20 (exported without mmkdflow).
_base_ = './fmkt_resnet56_resnet20_1xb64_cifar100.py'

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
