# FM-KT (Shao et al., 2024) on vision transformers, the authors' released
# DeiT recipe (shaoshitong/FM-KT-DeiT,
# configs/distillers/imagenet/deit-s3_distill_deit-t_img.py), ImageNet-1k:
#   teacher DeiT III-Small, ImageNet-21k pre-trained (mmpretrain model zoo
#           deit3-small-p16_in21k-pre_3rdparty_in1k, 83.06 top-1; the
#           released recipe loads the same checkpoint)
#   student DeiT-Tiny (mmpretrain's deit-tiny_4xb256_in1k recipe, 74.50
#           top-1 alone): 300 epochs, AdamW, Mixup, CutMix, label
#           smoothing 0.1
#   FM-KT: no number in the paper (arXiv:2402.02012); not run here.
# Two kinds of distillation points:
#   flow      - FM-KT logit flow on the student's class token after the
#               final norm (backbone output, (B, 192)): an mlp
#               meta-encoder of 2 blocks runs N = 8 rectified Euler steps
#               in training and at inference (the released module is built
#               with sampling=8 and number=2, the encoder depth); each
#               step's prediction goes through Linear(192, 1000), matched
#               to the teacher logits with DIST (beta = gamma = 2,
#               tau = 1) plus CE with label smoothing 0.1 (the student
#               head's LabelSmoothLoss), each with weight 1 / N. The mean
#               step logits replace the student head's output in training
#               and inference; no CE outside the flow.
#   vitkd_*   - ViTKD (arXiv:2209.02432) on the patch tokens (B, N, C)
#               (the class token dropped): mimicking of transformer layers
#               0 and 1 (a Linear(192, 384) each, alpha = 3e-5), generation
#               of the last layer after the final norm ('backbone.ln1',
#               mask ratio lambda = 0.5, beta = 3e-6).
# The flow is part of the deployed classifier (tools/export_student.py
# writes it); the student's own head.layers.head is unused, so DDP needs
# find_unused_parameters.
_base_ = [
    'mmpretrain::deit/deit-tiny_4xb256_in1k.py',
    '../_base_/distill/fmkt_logits_in1k.py'
]

teacher_ckpt = ('https://download.openmmlab.com/mmclassification/v0/deit3/'
                'deit3-small-p16_in21k-pre_3rdparty_in1k_20221009-dcd90827'
                '.pth')
vitkd_mimic = dict(
    type='ViTKDLoss', student_dims=192, teacher_dims=384, mode='mimic',
    loss_weight=3e-5)
model = dict(
    _base_.fmkt_logits_distiller,
    _delete_=True,
    student=dict(cfg_path='mmpretrain::deit/deit-tiny_4xb256_in1k.py'),
    teacher=dict(cfg_path='mmpretrain::deit3/deit3-small-p16_64xb64_in1k.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        flow=dict(
            student='backbone',
            student_index=-1,
            teacher='head.layers.head',
            replace='head.layers.head',
            connector=dict(
                _base_.fmkt_logits_distiller.distill_points.flow.connector,
                channels=192,
                meta_encoder=dict(type='mlp', num_blocks=2),
                num_steps=8,
                num_steps_test=8,
                label_smoothing=0.1)),
        vitkd_mimic0=dict(
            student='backbone.layers.0',
            teacher='backbone.layers.0',
            loss=vitkd_mimic),
        vitkd_mimic1=dict(
            student='backbone.layers.1',
            teacher='backbone.layers.1',
            loss=vitkd_mimic),
        vitkd_gen=dict(
            student='backbone.ln1',
            teacher='backbone.ln1',
            loss=dict(
                type='ViTKDLoss', student_dims=192, teacher_dims=384,
                mode='generate', mask_ratio=0.5, loss_weight=3e-6))))
