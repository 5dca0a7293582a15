# FM-KT distiller (FPN feature flow, w = 10), EMA hook and import of COCO rows.
fmkt_fpn_distiller = dict(
    _scope_='mmkdflow',
    type='OfflineDistiller',
    distill_points=dict(
        fpn=dict(
            student='neck',
            teacher='neck',
            index=(0, 1, 2, 3, 4),
            # the mean prediction replaces each student level
            replace=True,
            # shared convnext meta-encoder, N = 4, PKD per step, w = 10 per
            # level and 0 on the last
            connector=dict(
                type='FMKTConnector',
                channels=256,
                meta_encoder='convnext',
                num_steps=4,
                level_weights=[10.0, 10.0, 10.0, 10.0, 0.0],
                distance=dict(type='PKDLoss', loss_weight=1.0)))))
custom_hooks = [dict(type='mmkdflow.ConnectorEMAHook', decay=0.999)]
custom_imports = dict(imports=['mmkdflow'], allow_failed_imports=False)
