# FM-KT (Shao et al., 2024), CIFAR-100 top-1, logit flow, strategy A1:
#   WRN-40-2 -> ShuffleNetV1: no paper number taken here (arXiv:2402.02012).
# The released classification script (Klayand/PCKA, classification/C100/
# train_student_fakd_dist_pkd.py) runs this pair (its lists of
# teachers and students).
# Teacher weights: a WRN-40-2 trained on CIFAR-100 (no OpenMMLab checkpoint
# exists): see configs/fmkt/README.md, "CIFAR-100 teachers".
# The flow of ../_base_/distill/fmkt_logits_cifar100.py starts from the
# student's last feature map Z (960 x 4 x 4): transformer meta-encoder,
# N = 8 rectified Euler steps (train and test), pooled Linear(960, 100)
# per step, DIST + CE with weight 1 / N each. The mean step logits replace
# head.fc's output, so the flow is part of the deployed classifier.
# SGD with Nesterov momentum, as the released script.
_base_ = [
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/datasets/cifar100_bs64.py',
    '../_base_/schedules/strategy_a1_cifar100.py',
    '../_base_/distill/fmkt_logits_cifar100.py',
]

cifar_models = '{{fileDirname}}/../_base_/models/cifar100/'
teacher_ckpt = 'work_dirs/cifar100_teachers/wrn-40-2/epoch_240.pth'
model = dict(
    _base_.fmkt_cifar100_distiller,
    student=dict(cfg_path=cifar_models + 'shufflenet_v1.py'),
    teacher=dict(cfg_path=cifar_models + 'wrn_40_2.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        flow=dict(
            _base_.fmkt_cifar100_distiller.distill_points.flow,
            connector=dict(
                _base_.fmkt_cifar100_distiller.distill_points.flow.connector,
                channels=960))))
optim_wrapper = dict(optimizer=dict(nesterov=True))
