# FM-KT-Theta (Shao et al., 2024), ImageNet-1k, no inference cost:
#   teacher ResNet-50    76.55 top-1 (mmpretrain model zoo)
#   student MobileNetV1  (mmkdflow.MobileNetV1), ResNet-18's 100-epoch recipe
#   FM-KT-Theta: no ImageNet number in our paper summary.
# The flow of resnet50_mobilenetv1_in1k.py is trained beside the student and
# the student's own classifier learns from its mean logits:
# loss_theta = DIST(fc0(Z), stopgrad(mean_i fc(Xhat_i))) plus the student's
# own CE (student_loss_weight=1). The deployed model is the vanilla
# MobileNetV1 classifier.
_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'

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
    _delete_=True,
    _scope_='mmkdflow',
    type='OfflineDistiller',
    student=student,
    teacher=dict(cfg_path='mmpretrain::resnet/resnet50_8xb32_in1k.py'),
    teacher_ckpt=teacher_ckpt,
    student_loss_weight=1.0,
    distill_points=dict(
        flow=dict(
            student='backbone',
            student_index=-1,
            teacher='head.fc',
            replace='head.fc',
            connector=dict(
                type='FMKTConnector',
                channels=1024,
                meta_encoder='transformer',
                num_steps=8,
                head_mode=True,
                num_classes=1000,
                theta=True,
                distance=dict(type='DISTLoss', beta=2.0, gamma=2.0,
                              tau=1.0)))))
custom_hooks = [dict(type='mmkdflow.StudentCheckpointHook')]
custom_imports = dict(imports=['mmkdflow'], allow_failed_imports=False)
