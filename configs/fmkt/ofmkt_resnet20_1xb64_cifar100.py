# OFM-KT (Shao et al., 2024), CIFAR-100 top-1, online distillation, no
# teacher:
#   student ResNet-20: no paper number taken here (arXiv:2402.02012).
# The logit flow of fmkt_resnet56_resnet20_1xb64_cifar100.py without a
# teacher: every step's logits o_i = fc(Xhat_i) get label-smoothed CE (0.1)
# and are distilled towards the stop-gradient ensemble mean_j o_j,
#   L = sum_i (1/N) CE_ls(o_i, y)
#     + sum_i (1/N) DIST(o_i, stopgrad(mean_j o_j)),
# N = 8 (DIST with beta = gamma = 2, tau = 1, as in the offline rows: our
# choice of D). The mean logits replace head.fc's output
# (student_loss_weight = 0); the flow is part of the deployed classifier.
# Strategy A1 with Nesterov momentum, as the offline rows.
_base_ = [
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/datasets/cifar100_bs64.py',
    '../_base_/schedules/strategy_a1_cifar100.py',
    '../_base_/distill/fmkt_logits_cifar100.py',
]

# the offline rows' distiller and flow connector, without a teacher
model = dict(
    _base_.fmkt_cifar100_distiller,
    student=dict(cfg_path='{{fileDirname}}/../_base_/models/cifar100/'
                 'resnet20.py'),
    teacher=None,
    distill_points=dict(
        flow=dict(
            student='backbone',
            student_index=-1,
            replace='head.fc',
            connector=dict(
                _base_.fmkt_cifar100_distiller.distill_points.flow.connector,
                channels=64,
                online=True,
                label_smoothing=0.1))))
optim_wrapper = dict(optimizer=dict(nesterov=True))
