# DiffKD (Huang et al., NeurIPS 2023), Table 9, CIFAR-100 top-1, strategy A1:
#   T: WRN-40-2 75.61   S: WRN-40-1 71.98
#   DiffKD 74.09 +- 0.09 (KD 73.54, DIST 74.73 in the same table).
# Teacher weights: a WRN-40-2 trained on CIFAR-100 (no OpenMMLab checkpoint
# exists): see configs/diffkd/README.md, "CIFAR-100 teachers".
# Two distillation points, lambda_1 = lambda_3 = 1, no autoencoder (Appendix
# B.2):
#   feat   - the feature before global pooling, WRN-40-2 128 x 8 x 8 and
#            WRN-40-1 64 x 8 x 8; the feature-form denoiser runs on the
#            teacher's 128 channels, MSE.
#   logits - the 100 logits, vector-form denoiser, KL with temperature 1.
_base_ = [
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/datasets/cifar100_bs64.py',
    '../_base_/schedules/strategy_a1_cifar100.py',
    '../_base_/distill/diffkd_cifar100.py',
]

cifar_models = '{{fileDirname}}/../_base_/models/cifar100/'
teacher_ckpt = 'work_dirs/cifar100_teachers/wrn-40-2/epoch_240.pth'
model = dict(
    _base_.diffkd_cifar100_distiller,
    student=dict(cfg_path=cifar_models + 'wrn_40_1.py'),
    teacher=dict(cfg_path=cifar_models + 'wrn_40_2.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        _base_.diffkd_cifar100_distiller.distill_points,
        feat=dict(
            _base_.diffkd_cifar100_distiller.distill_points.feat,
            connector=dict(
                _base_.diffkd_cifar100_distiller.distill_points.feat.connector,
                student_channels=64,
                teacher_channels=128))))
