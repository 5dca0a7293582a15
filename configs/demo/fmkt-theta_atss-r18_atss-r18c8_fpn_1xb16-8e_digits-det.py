# FM-KT-Theta on DigitsDet [our extension for FPN]: the flow of
# fmkt_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det.py is trained
# beside the student, and its stop-gradient mean prediction is distilled back
# into each raw student FPN level (loss_theta = w * PKD(Z, stopgrad(mean_i
# Xhat_i)), w = 4). The raw levels are never replaced, so the deployed detector
# is the vanilla student (exported without mmkdflow). Same student, teacher,
# teacher checkpoint and schedule as
# pkd_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det.py.
# Tuning split (tools/demo.py --tune data, seed 0, 1 thread, 2026-12-03;
# student alone 35.1 at seed 0, 35.3 +- 1.3 over seeds 0-2), 3 tries of
# the level weight w (flow and Theta loss), as for PKD and FM-KT:
#   w = 1:                                   34.2 mAP
#   w = 2:                                   35.8 mAP
#   w = 4 (FM-KT's file, inherited here):    39.0 mAP
# The identity start (init='identity') is the default of every FM-KT
# connector, not a tuned value.
_base_ = './fmkt_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det.py'

model = dict(distill_points=dict(fpn=dict(connector=dict(theta=True))))
# the exported student is the vanilla detector: no flow, hence no flow EMA
custom_hooks = [
    *_base_.safe_training_hooks,
    dict(type='mmkdflow.StudentCheckpointHook')
]
