# FM-KT distiller (FPN feature flow, w = 10), EMA hook and import of COCO rows.
_base_ = ['../default_runtime_distill.py']
fmkt_fpn_distiller = dict(
    _scope_='mmkdflow',
    type='Distiller',
    distill_points=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            index=(0, 1, 2, 3, 4),
            # the mean prediction replaces each student level
            replace=True,
            # one convnext flow per level (as released), N = 4, PKD per
            # step, w = 10 per level; the last level has weight 0, so no
            # flow: its raw feature goes to the head
            connector=dict(
                type='FMKTFeatureConnector',
                channels=256,
                meta_encoder='convnext',
                num_steps=4,
                share_across_levels=False,
                level_weights=[10.0, 10.0, 10.0, 10.0, 0.0],
                distance=dict(type='PKDLoss', loss_weight=1.0)))))
custom_hooks = [
    *_base_.safe_training_hooks,
    dict(type='mmkdflow.ConnectorEMAHook', decay=0.999)]
custom_imports = dict(imports=['mmkdflow'], allow_failed_imports=False)
