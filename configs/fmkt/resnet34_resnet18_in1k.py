# FM-KT (Shao et al., 2024), ImageNet-1k, logit flow:
#   teacher ResNet-34  73.62 top-1 (mmpretrain model zoo)
#   student ResNet-18  69.90 top-1 alone (model zoo), 100-epoch recipe
#   FM-KT: no ImageNet number in our paper summary.
# The flow starts from the student's last feature map Z (512 x 7 x 7): a
# transformer meta-encoder (window attention, window 7) runs N = 8 rectified
# Euler steps (train and test); every step's prediction goes through a
# pooled Linear(512, 1000) and is matched to the teacher logits with DIST
# (beta = gamma = 2, tau = 1) plus CE on the labels, each with weight 1 / N.
# The mean of the N step logits replaces the student's head.fc output in
# training and inference, so there is no CE outside the flow
# (student_loss_weight=0) and the flow is part of the deployed classifier
# (tools/export_student.py writes it). The student's own head.fc is then
# unused: DDP needs find_unused_parameters.
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
    student_loss_weight=0.0,
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
                distance=dict(type='DISTLoss', beta=2.0, gamma=2.0,
                              tau=1.0)))))
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
custom_imports = dict(imports=['mmkdflow'], allow_failed_imports=False)
