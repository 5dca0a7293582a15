# DiffKD distiller of the CIFAR-100 rows (Table 9; Appendix B.2: on the
# feature before global pooling and on the logits, no autoencoder,
# lambda_1 = lambda_3 = 1).
_base_ = ['../default_runtime_distill.py']
diffkd_cifar100_distiller = dict(
    _scope_='mmkdflow',
    type='Distiller',
    distill_points=dict(
        feat=dict(
            student='backbone',
            teacher='backbone',
            index=0,
            # the row sets student_channels / teacher_channels; the
            # denoiser runs on the teacher's own channels
            connector=dict(
                type='DiffKDConnector',
                use_ae=False,
                form='feature',
                num_inference_steps=5,
                start_timestep=400,
                diff_loss_weight=1.0,
                kd_loss=dict(type='MSELoss', loss_weight=1.0))),
        logits=dict(
            student='head.fc',
            teacher='head.fc',
            connector=dict(
                type='DiffKDConnector',
                student_channels=100,
                teacher_channels=100,
                form='vector',
                num_inference_steps=5,
                start_timestep=400,
                diff_loss_weight=1.0,
                kd_loss=dict(type='KDLoss', temperature=1.0,
                             loss_weight=1.0)))))
custom_hooks = [
    *_base_.safe_training_hooks,
    dict(type='mmkdflow.StudentCheckpointHook')]
custom_imports = dict(imports=['mmkdflow'], allow_failed_imports=False)
