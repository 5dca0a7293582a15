# DiffKD (Huang et al., NeurIPS 2023), Table 2, ImageNet-1k top-1, baseline
# setting (strategy B1):
#   T: ResNet-50 76.16   S: MobileNetV1 70.13
#   DiffKD 73.62 (top-5 91.34); with DIST on the logits (see
#   diffkd-dist_resnet50_mobilenet-v1_8xb32_in1k.py) 73.78.
#   Ablations (Tables 7, 11): feature point only 73.16, logits only 72.89,
#   without adaptive noise matching (use_anm=False) 73.34.
# Teacher weights: mmpretrain model zoo resnet50_8xb32_in1k (76.55 top-1; the
# paper uses torchvision's ResNet-50, 76.16).
# Student: mmpretrain's ResNet-18 classifier recipe with the backbone
# replaced by mmkdflow.MobileNetV1 (width 1.0, 1024-channel last map, 4.2 M
# parameters with the 1000-class head); mmpretrain 1.2 has no MobileNetV1.
# Two distillation points, lambda_1 = lambda_2 = lambda_3 = 1 (Appendix
# B.2):
#   feat   - the backbone output before global pooling (student 1024 x 7 x 7,
#            teacher 2048 x 7 x 7); the teacher is compressed by a linear
#            autoencoder to 1024 channels, the feature-form denoiser runs on
#            that latent, MSE.
#   logits - the classifier logits (1000), vector-form (MLP) denoiser, no
#            autoencoder, KL divergence with temperature 1.
# Strategy B1 is mmpretrain's ResNet-18 recipe (inherited): 100 epochs, SGD
# lr 0.1 for batch 256 (8 x 32), weight decay 1e-4, steps at 30/60/90.
_base_ = [
    'mmpretrain::resnet/resnet18_8xb32_in1k.py',
    '../_base_/distill/diffkd_in1k.py'
]

teacher_ckpt = ('https://download.openmmlab.com/mmclassification/v0/resnet/'
                'resnet50_8xb32_in1k_20210831-ea4938fc.pth')
model = dict(
    _base_.diffkd_in1k_distiller,
    _delete_=True,
    student=dict(
        cfg_path='mmpretrain::resnet/resnet18_8xb32_in1k.py',
        backbone=dict(_delete_=True, type='mmkdflow.MobileNetV1'),
        head=dict(in_channels=1024)),
    teacher=dict(cfg_path='mmpretrain::resnet/resnet50_8xb32_in1k.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        _base_.diffkd_in1k_distiller.distill_points,
        feat=dict(
            _base_.diffkd_in1k_distiller.distill_points.feat,
            connector=dict(
                _base_.diffkd_in1k_distiller.distill_points.feat.connector,
                student_channels=1024,
                teacher_channels=2048))))
