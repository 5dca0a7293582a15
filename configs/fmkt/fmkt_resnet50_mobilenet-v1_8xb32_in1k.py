# FM-KT (Shao et al., 2024), ImageNet-1k, logit flow across architectures:
#   teacher ResNet-50    76.55 top-1 (mmpretrain model zoo)
#   student MobileNetV1  (mmkdflow.MobileNetV1, 1024-channel last map),
#           trained with ResNet-18's 100-epoch recipe
#   FM-KT: no ImageNet number taken from the paper (arXiv:2402.02012).
# As fmkt_resnet34_resnet18_8xb32_in1k.py: transformer meta-encoder on the
# student's last map (1024 x 7 x 7), N = 8, pooled Linear(1024, 1000) per step,
# DIST (beta = gamma = 2, tau = 1) + CE per step with weight 1 / N, the mean
# logits replace the student's head.fc output (student_loss_weight=0; the flow
# is part of the deployed classifier).
_base_ = [
    'mmpretrain::resnet/resnet18_8xb32_in1k.py',
    '../_base_/distill/fmkt_logits_in1k.py'
]

teacher_ckpt = ('https://download.openmmlab.com/mmclassification/v0/resnet/'
                'resnet50_8xb32_in1k_20210831-ea4938fc.pth')
student = dict(
    _scope_='mmpretrain',
    type='ImageClassifier',
    backbone=dict(type='mmkdflow.MobileNetV1'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
model = dict(
    _base_.fmkt_logits_distiller,
    _delete_=True,
    student=student,
    teacher=dict(cfg_path='mmpretrain::resnet/resnet50_8xb32_in1k.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        flow=dict(
            _base_.fmkt_logits_distiller.distill_points.flow,
            connector=dict(
                _base_.fmkt_logits_distiller.distill_points.flow.connector,
                channels=1024))))
