# FM-KT-Theta (Shao et al., 2024), ImageNet-1k, no inference cost:
#   teacher ResNet-34  73.62 top-1 (mmpretrain model zoo)
#   student ResNet-18  69.90 top-1 alone (model zoo), 100-epoch recipe
#   FM-KT-Theta: no ImageNet number in our paper summary.
# The flow of resnet34_resnet18_in1k.py (transformer meta-encoder, N = 8,
# DIST + CE per step, weight 1 / N) is trained beside the student, and the
# student's own classifier fc0(Z) learns from the flow's mean logits:
# loss_theta = DIST(fc0(Z), stopgrad(mean_i fc(Xhat_i))), plus the student's
# own CE(fc0(Z), y) (student_loss_weight=1). fc0(Z) is never replaced, so the
# deployed model is the vanilla ResNet-18 (exported without mmkdflow).
_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'

teacher_ckpt = ('https://download.openmmlab.com/mmclassification/v0/resnet/'
                'resnet34_8xb32_in1k_20210831-f257d4e6.pth')
model = dict(
    _delete_=True,
    _scope_='mmkdflow',
    type='OfflineDistiller',
    student=dict(cfg_path='mmpretrain::resnet/resnet18_8xb32_in1k.py'),
    teacher=dict(cfg_path='mmpretrain::resnet/resnet34_8xb32_in1k.py'),
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
                channels=512,
                meta_encoder='transformer',
                num_steps=8,
                head_mode=True,
                num_classes=1000,
                theta=True,
                theta_weight=1.0,
                distance=dict(type='DISTLoss', beta=2.0, gamma=2.0,
                              tau=1.0)))))
custom_hooks = [dict(type='mmkdflow.StudentCheckpointHook')]
custom_imports = dict(imports=['mmkdflow'], allow_failed_imports=False)
