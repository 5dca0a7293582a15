# DiffKD "dagger" (Huang et al., NeurIPS 2023), Table 5, COCO val:
#   T: RetinaNet-X101 41.2 AP   S: RetinaNet-R50 37.4 AP
#   DiffKD-dagger 41.4 AP (DiffKD with plain MSE: 40.7 AP).
# As diffkd_retinanet-x101_retinanet-r50_fpn_2x_coco.py (same teacher weights:
# retinanet_x101-64x4d_fpn_1x_coco), but the distance between the denoised
# student and the teacher FPN feature is the attention-weighted MSE
# (FGD-style spatial x channel attention of the teacher feature,
# temperature 0.5), still with weight 5.
_base_ = './diffkd_retinanet-x101_retinanet-r50_fpn_2x_coco.py'

model = dict(
    distill_points=dict(
        fpn=dict(
            connector=dict(
                kd_loss=dict(
                    _delete_=True,
                    type='AttentionMSELoss',
                    temperature=0.5,
                    loss_weight=5.0)))))
