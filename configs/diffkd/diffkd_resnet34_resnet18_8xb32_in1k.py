# DiffKD (Huang et al., NeurIPS 2023), Table 2, ImageNet-1k top-1, baseline
# setting (strategy B1):
#   T: ResNet-34 73.31   S: ResNet-18 69.76
#   DiffKD 72.22 (top-5 90.64); with DIST on the logits (see
#   diffkd-dist_resnet34_resnet18_8xb32_in1k.py) 72.49.
# Teacher weights: mmpretrain model zoo resnet34_8xb32_in1k (73.62 top-1; the
# paper uses torchvision's ResNet-34, 73.31).
# Two distillation points, lambda_1 = lambda_2 = lambda_3 = 1 (Appendix
# B.2):
#   feat   - the backbone output before global pooling (512 x 7 x 7 for
#            both); the teacher is compressed by a linear autoencoder to 1024
#            channels, the feature-form denoiser runs on that latent, MSE.
#   logits - the classifier logits (1000), vector-form (MLP) denoiser, no
#            autoencoder, KL divergence with temperature 1.
# Strategy B1 is mmpretrain's ResNet-18 recipe (inherited): 100 epochs, SGD
# lr 0.1 for batch 256 (8 x 32), weight decay 1e-4, steps at 30/60/90.
_base_ = [
    'mmpretrain::resnet/resnet18_8xb32_in1k.py',
    '../_base_/distill/diffkd_in1k.py'
]

teacher_ckpt = ('https://download.openmmlab.com/mmclassification/v0/resnet/'
                'resnet34_8xb32_in1k_20210831-f257d4e6.pth')
model = dict(
    _base_.diffkd_in1k_distiller,
    _delete_=True,
    student=dict(cfg_path='mmpretrain::resnet/resnet18_8xb32_in1k.py'),
    teacher=dict(cfg_path='mmpretrain::resnet/resnet34_8xb32_in1k.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        _base_.diffkd_in1k_distiller.distill_points,
        feat=dict(
            _base_.diffkd_in1k_distiller.distill_points.feat,
            connector=dict(
                _base_.diffkd_in1k_distiller.distill_points.feat.connector,
                student_channels=512,
                teacher_channels=512))))
