# DiffKD with DIST on the logits (the dagger column of Table 2; Huang et
# al., NeurIPS 2023), ImageNet-1k top-1, strategy B1:
#   T: ResNet-50 76.16   S: MobileNetV1 70.13
#   DiffKD-DIST 73.78 (top-5 91.48); DiffKD with KL 73.62.
# As diffkd_resnet50_mobilenet-v1_8xb32_in1k.py (same teacher weights:
# resnet50_8xb32_in1k), but the distance between the denoised student logits
# and the teacher logits is DIST (beta = gamma = 1, tau = 1) instead of KL.
_base_ = './diffkd_resnet50_mobilenet-v1_8xb32_in1k.py'

# the DIST loss comes from ../_base_/distill/diffkd_in1k.py
model = dict(
    distill_points=dict(
        logits=dict(
            connector=dict(
                kd_loss=dict(_base_.diffkd_dist_kd_loss, _delete_=True)))))
