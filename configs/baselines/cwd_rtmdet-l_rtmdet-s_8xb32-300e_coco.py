# CWD, RTMDet-L -> RTMDet-S on COCO: mmyolo's RTMDet distillation recipe
# (configs/rtmdet/distillation, MMRazor) on mmdet 3.3's RTMDet. mmyolo has
# no L -> S row (its rows are s->tiny, m->s, l->m, x->l); the settings are
# those of kd_s_rtmdet_m_neck_300e_coco.py with RTMDet-L as the teacher.
#   T: RTMDet-L 51.3 box AP (mmdet model zoo)   S: RTMDet-S 44.5 alone
# Channel-wise distillation (tau 1, weight 1) on the output conv of each
# PAFPN level (neck.out_convs.{0,1,2}.conv, before its BN): the student's
# 128 channels go through a 1x1 conv to the teacher's 256, and both sides
# are standardised per channel (MMRazor's ConvModuleConnector /
# NormConnector with BN(affine=False, track_running_stats=False)).
# Distillation stops at epoch 280, when the pipeline switches off mosaic:
# the student finetunes alone for the last 20 epochs.
_base_ = ['../_base_/distill/rtmdet_s_coco.py']

model = dict(
    _base_.rtmdet_l_teacher,
    _scope_='mmkdflow',
    type='Distiller',
    student=dict(cfg_path='mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py'),
    distill_points=dict(
        fpn0=dict(
            student='neck.out_convs.0.conv',
            teacher='neck.out_convs.0.conv',
            connector=dict(
                type='ConvAdapter',
                in_channels=128,
                out_channels=256,
                channel_norm=True),
            loss=dict(type='ChannelWiseDivergence', tau=1.0,
                      loss_weight=1.0)),
        fpn1=dict(
            student='neck.out_convs.1.conv',
            teacher='neck.out_convs.1.conv',
            connector=dict(
                type='ConvAdapter',
                in_channels=128,
                out_channels=256,
                channel_norm=True),
            loss=dict(type='ChannelWiseDivergence', tau=1.0,
                      loss_weight=1.0)),
        fpn2=dict(
            student='neck.out_convs.2.conv',
            teacher='neck.out_convs.2.conv',
            connector=dict(
                type='ConvAdapter',
                in_channels=128,
                out_channels=256,
                channel_norm=True),
            loss=dict(type='ChannelWiseDivergence', tau=1.0,
                      loss_weight=1.0))))
# the connectors get no gradient once distillation stops
find_unused_parameters = True
custom_hooks = [
    *_base_.safe_training_hooks, *_base_.rtmdet_hooks,
    dict(type='mmkdflow.StopDistillHook', stop_epoch=280),
    dict(type='mmkdflow.StudentCheckpointHook')
]
