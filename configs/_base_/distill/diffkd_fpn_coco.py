# DiffKD distiller fields, hook and import of the COCO rows (256-ch FPNs).
_base_ = ['../default_runtime_distill.py']
diffkd_fpn_distiller = dict(
    _scope_='mmkdflow',
    type='Distiller',
    distill_points=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            index=(0, 1, 2, 3, 4),
            # one denoiser shared by all levels, no autoencoder, 5 DDIM steps
            # from timestep 400; MSE weight 5 (paper, Appendix B.3)
            connector=dict(
                type='DiffKDConnector',
                student_channels=256,
                teacher_channels=256,
                form='feature',
                share_across_levels=True,
                num_inference_steps=5,
                start_timestep=400,
                diff_loss_weight=1.0,
                kd_loss=dict(type='MSELoss', loss_weight=5.0)))))
custom_hooks = [
    *_base_.safe_training_hooks,
    dict(type='mmkdflow.StudentCheckpointHook')]
custom_imports = dict(imports=['mmkdflow'], allow_failed_imports=False)
