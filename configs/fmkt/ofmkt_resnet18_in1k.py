# OFM-KT (Shao et al., 2024), ImageNet-1k, online distillation, no teacher:
#   student ResNet-18  69.90 top-1 alone (mmpretrain model zoo), 100 epochs
#   OFM-KT: no ImageNet number in our paper summary.
# The logit flow of resnet34_resnet18_in1k.py without a teacher: every step's
# logits o_i = fc(Xhat_i) get label-smoothed CE (0.1) and are distilled
# towards the stop-gradient ensemble mean_j o_j,
#   L = sum_i (1/N) CE_ls(o_i, y)
#     + sum_i (1/N) DIST(o_i, stopgrad(mean_j o_j)),
# N = 8 (DIST with beta = gamma = 2, tau = 1, as in the offline rows: our
# choice of D). The mean logits replace head.fc's output (student_loss_weight
# = 0); the flow is part of the deployed classifier.
_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'

model = dict(
    _delete_=True,
    _scope_='mmkdflow',
    type='OfflineDistiller',
    student=dict(cfg_path='mmpretrain::resnet/resnet18_8xb32_in1k.py'),
    teacher=None,
    student_loss_weight=0.0,
    distill_points=dict(
        flow=dict(
            student='backbone',
            student_index=-1,
            replace='head.fc',
            connector=dict(
                type='FMKTConnector',
                channels=512,
                meta_encoder='transformer',
                num_steps=8,
                head_mode=True,
                num_classes=1000,
                online=True,
                label_smoothing=0.1,
                distance=dict(type='DISTLoss', beta=2.0, gamma=2.0,
                              tau=1.0)))))
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
custom_imports = dict(imports=['mmkdflow'], allow_failed_imports=False)
