# DiffKD distiller (feature + KL logits) and DIST loss of the ImageNet-1k rows.
_base_ = ['../default_runtime_distill.py']
diffkd_in1k_distiller = dict(
    _scope_='mmkdflow',
    type='Distiller',
    distill_points=dict(
        feat=dict(
            student='backbone',
            teacher='backbone',
            index=0,
            # the row sets student_channels / teacher_channels; the teacher is
            # compressed by a linear autoencoder to 1024 channels
            connector=dict(
                type='DiffKDConnector',
                use_ae=True,
                ae_channels=1024,
                form='feature',
                num_inference_steps=5,
                start_timestep=400,
                diff_loss_weight=1.0,
                ae_loss_weight=1.0,
                kd_loss=dict(type='MSELoss', loss_weight=1.0))),
        logits=dict(
            student='head.fc',
            teacher='head.fc',
            connector=dict(
                type='DiffKDConnector',
                student_channels=1000,
                teacher_channels=1000,
                form='vector',
                num_inference_steps=5,
                start_timestep=400,
                diff_loss_weight=1.0,
                kd_loss=dict(type='KDLoss', temperature=1.0,
                             loss_weight=1.0)))))
# the logits distance of the diffkd-dist rows (beta = gamma = 1, tau = 1)
diffkd_dist_kd_loss = dict(
    type='DISTLoss', beta=1.0, gamma=1.0, tau=1.0, loss_weight=1.0)
custom_hooks = [
    *_base_.safe_training_hooks,
    dict(type='mmkdflow.StudentCheckpointHook')]
custom_imports = dict(imports=['mmkdflow'], allow_failed_imports=False)
