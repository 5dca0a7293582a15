# FM-KT logit-flow distiller, DDP setting and import of the ImageNet-1k rows.
_base_ = ['../default_runtime_distill.py']
fmkt_logits_distiller = dict(
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
            # transformer meta-encoder, N = 8, pooled Linear(channels, 1000)
            # per step, DIST (beta = gamma = 2, tau = 1) + CE; the row sets
            # channels (the student's last map)
            connector=dict(
                type='FMKTLogitConnector',
                meta_encoder='transformer',
                num_steps=8,
                num_classes=1000,
                distance=dict(type='DISTLoss', beta=2.0, gamma=2.0,
                              tau=1.0)))))
# the student's own head.fc is unused
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
custom_imports = dict(imports=['mmkdflow'], allow_failed_imports=False)
