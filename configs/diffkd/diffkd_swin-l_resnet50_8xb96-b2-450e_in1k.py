# DiffKD (Huang et al., NeurIPS 2023), Table 3, ImageNet-1k top-1,
# stronger teacher and strategy: Swin-L -> ResNet-50.
#   T 86.3   S 78.5 (alone, B2)   DiffKD 80.5
#   (KD 80.0, RKD 78.9, SRRL 78.6, DIST 80.2).
# Teacher: mmpretrain's Swin-L pre-trained on ImageNet-22k and fine-tuned
# on ImageNet-1k at 224 (swin-large_in21k-pre-3rdparty_in1k, 86.24 top-1;
# the paper's 86.3). Its distillation feature is the last stage output
# (backbone out_indices=(3, ): norm3 of stage 4, 1536 x 7 x 7).
# Strategy B2 (configs/_base_/schedules/strategy_b2_in1k.py): 450 epochs,
# RMSProp, EMA, RandAugment and random erasing; the student is trained from
# scratch, its head with label smoothing 0.1.
# Two distillation points, lambda_1 = lambda_2 = lambda_3 = 1 (Appendix
# B.2):
#   feat   - the backbone output before global pooling, student
#            ResNet-50 (2048 x 7 x 7);
#            the Swin-L stage 4 (1536 x 7 x 7) is compressed by
#            the linear autoencoder to 768 channels (Appendix B.2), MSE.
#   logits - the classifier logits (1000), vector-form (MLP) denoiser, no
#            autoencoder, KL divergence with temperature 1.
_base_ = [
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/schedules/strategy_b2_in1k.py',
    '../_base_/distill/diffkd_in1k.py'
]

teacher_ckpt = ('https://download.openmmlab.com/mmclassification/v0/'
                'swin-transformer/convert/'
                'swin_large_patch4_window7_224_22kto1k-5f0996db.pth')
model = dict(
    _base_.diffkd_in1k_distiller,
    student=dict(
        cfg_path='mmpretrain::resnet/resnet50_8xb32_in1k.py',
        head=dict(loss=_base_.strategy_b2_head_loss)),
    teacher=dict(
        cfg_path='mmpretrain::swin_transformer/swin-large_16xb64_in1k.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        _base_.diffkd_in1k_distiller.distill_points,
        feat=dict(
            _base_.diffkd_in1k_distiller.distill_points.feat,
            connector=dict(
                _base_.diffkd_in1k_distiller.distill_points.feat.connector,
                student_channels=2048,
                teacher_channels=1536,
                ae_channels=768))))
custom_hooks = [*_base_.custom_hooks, *_base_.strategy_b2_hooks]
