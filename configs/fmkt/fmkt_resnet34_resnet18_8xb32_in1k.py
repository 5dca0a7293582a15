# FM-KT (Shao et al., 2024), ImageNet-1k, logit flow:
#   teacher ResNet-34  73.62 top-1 (mmpretrain model zoo)
#   student ResNet-18  69.90 top-1 alone (model zoo), 100-epoch recipe
#   FM-KT: no ImageNet number taken from the paper (arXiv:2402.02012).
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
_base_ = [
    'mmpretrain::resnet/resnet18_8xb32_in1k.py',
    '../_base_/distill/fmkt_logits_in1k.py'
]

teacher_ckpt = ('https://download.openmmlab.com/mmclassification/v0/resnet/'
                'resnet34_8xb32_in1k_20210831-f257d4e6.pth')
model = dict(
    _base_.fmkt_logits_distiller,
    _delete_=True,
    student=dict(cfg_path='mmpretrain::resnet/resnet18_8xb32_in1k.py'),
    teacher=dict(cfg_path='mmpretrain::resnet/resnet34_8xb32_in1k.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        flow=dict(
            _base_.fmkt_logits_distiller.distill_points.flow,
            connector=dict(
                _base_.fmkt_logits_distiller.distill_points.flow.connector,
                channels=512))))
