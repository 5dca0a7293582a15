# FM-KT logit-flow distiller of the CIFAR-100 rows, as the released
# classification script (Klayand/PCKA, classification/C100/
# train_student_fakd_dist_pkd.py, layer weights [0, 0, 0, 1]): one flow on
# the student's last feature map, a transformer meta-encoder (window 2 on
# the 8x8 / 4x4 / 2x2 CIFAR maps), N = 8 Euler steps in training, a pooled
# Linear(C, 100) per step, DIST (beta = gamma = 2, tau = 1) + CE per step
# with weight 1 / N (flow weight 1), no pair decoupling (dirac_ratio 1), no
# KD or CE outside the flow (kd_weight 0).
_base_ = ['../default_runtime_distill.py']
fmkt_cifar100_distiller = dict(
    _scope_='mmkdflow',
    type='Distiller',
    # the mean flow logits replace head.fc: no CE outside the flow
    student_loss_weight=0.0,
    distill_points=dict(
        flow=dict(
            student='backbone',
            student_index=-1,
            teacher='head.fc',
            replace='head.fc',
            # the row sets channels (the student's last map)
            connector=dict(
                type='FMKTLogitConnector',
                meta_encoder='transformer',
                num_steps=8,
                num_classes=100,
                distance=dict(type='DISTLoss', beta=2.0, gamma=2.0,
                              tau=1.0)))))
# the student's own head.fc is unused
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
custom_imports = dict(imports=['mmkdflow'], allow_failed_imports=False)
