# DiffKD (Huang et al., NeurIPS 2023), Table 9, CIFAR-100 top-1, strategy A1:
#   T: ResNet-32x4 79.42   S: ResNet-8x4 72.50
#   DiffKD 76.72 +- 0.15 (KD 73.33, DIST 76.31 in the same table).
# Teacher weights: a ResNet-32x4 trained on CIFAR-100 (no OpenMMLab checkpoint
# exists): see configs/diffkd/README.md, "CIFAR-100 teachers".
# Two distillation points, lambda_1 = lambda_3 = 1, no autoencoder (Appendix
# B.2):
#   feat   - the feature before global pooling, ResNet-32x4 256 x 8 x 8 and
#            ResNet-8x4 256 x 8 x 8; the feature-form denoiser runs on the
#            teacher's 256 channels, MSE.
#   logits - the 100 logits, vector-form denoiser, KL with temperature 1.
_base_ = [
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/datasets/cifar100_bs64.py',
    '../_base_/schedules/strategy_a1_cifar100.py',
    '../_base_/distill/diffkd_cifar100.py',
]

cifar_models = '{{fileDirname}}/../_base_/models/cifar100/'
teacher_ckpt = 'work_dirs/cifar100_teachers/resnet32x4/epoch_240.pth'
model = dict(
    _base_.diffkd_cifar100_distiller,
    student=dict(cfg_path=cifar_models + 'resnet8x4.py'),
    teacher=dict(cfg_path=cifar_models + 'resnet32x4.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        _base_.diffkd_cifar100_distiller.distill_points,
        feat=dict(
            _base_.diffkd_cifar100_distiller.distill_points.feat,
            connector=dict(
                _base_.diffkd_cifar100_distiller.distill_points.feat.connector,
                student_channels=256,
                teacher_channels=256))))
