# OFM-KT (Shao et al., 2024), ImageNet-1k, online distillation, no teacher:
#   student ResNet-18  69.90 top-1 alone (mmpretrain model zoo), 100 epochs
#   OFM-KT: no ImageNet number taken from the paper (arXiv:2402.02012).
# The logit flow of fmkt_resnet34_resnet18_8xb32_in1k.py without a teacher:
# every step's logits o_i = fc(Xhat_i) get label-smoothed CE (0.1) and are
# distilled towards the stop-gradient ensemble mean_j o_j,
#   L = sum_i (1/N) CE_ls(o_i, y)
#     + sum_i (1/N) DIST(o_i, stopgrad(mean_j o_j)),
# N = 8 (DIST with beta = gamma = 2, tau = 1, as in the offline rows: our
# choice of D). The mean logits replace head.fc's output (student_loss_weight
# = 0); the flow is part of the deployed classifier.
_base_ = [
    'mmpretrain::resnet/resnet18_8xb32_in1k.py',
    '../_base_/distill/fmkt_logits_in1k.py'
]

# the offline rows' distiller and flow connector, without a teacher
model = dict(
    _base_.fmkt_logits_distiller,
    _delete_=True,
    student=dict(cfg_path='mmpretrain::resnet/resnet18_8xb32_in1k.py'),
    teacher=None,
    distill_points=dict(
        flow=dict(
            student='backbone',
            student_index=-1,
            replace='head.fc',
            connector=dict(
                _base_.fmkt_logits_distiller.distill_points.flow.connector,
                channels=512,
                online=True,
                label_smoothing=0.1))))
