# FM-KT-Theta on DigitsDet [our extension for FPN]: the flow of
# fmkt_atss-r18_atss-r18c16_fpn_1xb16-8e_digits-det.py is trained
# beside the student, and its stop-gradient mean prediction is distilled back
# into each raw student FPN level (loss_theta = w * PKD(Z, stopgrad(mean_i
# Xhat_i)), w = 2). The raw levels are never replaced, so the deployed detector
# is the vanilla student (exported without mmkdflow). Same student, teacher,
# teacher checkpoint and schedule as
# pkd_atss-r18_atss-r18c16_fpn_1xb16-8e_digits-det.py.
# Tuning: 0 tries on the tuning split so far (PKD has 1, FM-KT 2; see
# their configs). The identity start (init='identity') is the
# default of every FM-KT connector, not a tuned value.
_base_ = './fmkt_atss-r18_atss-r18c16_fpn_1xb16-8e_digits-det.py'

model = dict(distill_points=dict(fpn=dict(connector=dict(theta=True))))
# the exported student is the vanilla detector: no flow, hence no flow EMA
custom_hooks = [dict(type='mmkdflow.StudentCheckpointHook')]
