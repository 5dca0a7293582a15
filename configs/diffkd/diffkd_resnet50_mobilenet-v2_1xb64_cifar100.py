# DiffKD (Huang et al., NeurIPS 2023), Table 9, CIFAR-100 top-1, strategy A1:
#   T: ResNet-50 79.34   S: MobileNetV2 64.6
#   DiffKD 69.21 +- 0.27 (KD 67.35, DIST 68.66 in the same table).
# Teacher weights: mmpretrain model zoo resnet50_8xb16_cifar100 (79.90 top-1;
# the same architecture as the CRD zoo's ResNet50, 23.7 M parameters).
# Two distillation points, lambda_1 = lambda_3 = 1, no autoencoder (Appendix
# B.2):
#   feat   - the feature before global pooling, 2048 x 4 x 4 for the
#            teacher and 1280 x 2 x 2 for the student: the student map is
#            resized (bilinear) to the teacher's size (resize_student,
#            our choice: the paper does not say how it matches sizes); the
#            feature-form denoiser on the teacher's 2048 channels, MSE.
#   logits - the 100 logits, vector-form denoiser, KL with temperature 1.
_base_ = [
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/datasets/cifar100_bs64.py',
    '../_base_/schedules/strategy_a1_cifar100.py',
    '../_base_/distill/diffkd_cifar100.py',
]

cifar_models = '{{fileDirname}}/../_base_/models/cifar100/'
teacher_ckpt = ('https://download.openmmlab.com/mmclassification/v0/resnet/'
                'resnet50_b16x8_cifar100_20210528-67b58a1b.pth')
model = dict(
    _base_.diffkd_cifar100_distiller,
    student=dict(cfg_path=cifar_models + 'mobilenet_v2.py'),
    teacher=dict(cfg_path='mmpretrain::resnet/resnet50_8xb16_cifar100.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        _base_.diffkd_cifar100_distiller.distill_points,
        feat=dict(
            _base_.diffkd_cifar100_distiller.distill_points.feat,
            connector=dict(
                _base_.diffkd_cifar100_distiller.distill_points.feat.connector,
                resize_student=True,
                student_channels=1280,
                teacher_channels=2048))))
