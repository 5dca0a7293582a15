# DiffKD (Huang et al., NeurIPS 2023), Table 3, ImageNet-1k top-1,
# stronger teacher and strategy: Swin-L -> Swin-T.
#   T 86.3   S 81.3 (alone, B3)   DiffKD 82.5
#   (KD 81.5, RKD 81.2, SRRL 81.5, DIST 82.3).
# Teacher: mmpretrain's Swin-L pre-trained on ImageNet-22k and fine-tuned
# on ImageNet-1k at 224 (swin-large_in21k-pre-3rdparty_in1k, 86.24 top-1;
# the paper's 86.3).
# Student: mmpretrain's Swin-T (swin-tiny_16xb64_in1k, drop path 0.2,
# label smoothing 0.1, Mixup and CutMix), trained from scratch.
# Strategy B3 (configs/_base_/schedules/strategy_b3_in1k.py): 300 epochs,
# AdamW lr 5e-4 for batch 1024, cosine, RandAugment, random erasing,
# colour jitter, Mixup and CutMix.
# Distillation points are Swin stage outputs, (B, C, H, W) maps: the last
# stage (backbone out_indices=(3, ), after norm3) of both models. Two
# points, lambda_1 = lambda_2 = lambda_3 = 1 (Appendix B.2):
#   feat   - student stage 4 (768 x 7 x 7); the teacher's stage 4
#            (1536 x 7 x 7) is compressed by the linear autoencoder to 768
#            channels (Appendix B.2), feature-form denoiser, MSE.
#   logits - the classifier logits (1000), vector-form (MLP) denoiser, no
#            autoencoder, KL divergence with temperature 1 (on the mixed
#            images, where both models see the same input).
_base_ = [
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/schedules/strategy_b3_in1k.py',
    '../_base_/distill/diffkd_in1k.py'
]

teacher_ckpt = ('https://download.openmmlab.com/mmclassification/v0/'
                'swin-transformer/convert/'
                'swin_large_patch4_window7_224_22kto1k-5f0996db.pth')
model = dict(
    _base_.diffkd_in1k_distiller,
    student=dict(
        cfg_path='mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py',
        head=dict(loss=_base_.strategy_b3_head_loss),
        train_cfg=_base_.strategy_b3_train_cfg),
    teacher=dict(
        cfg_path='mmpretrain::swin_transformer/swin-large_16xb64_in1k.py'),
    teacher_ckpt=teacher_ckpt,
    distill_points=dict(
        _base_.diffkd_in1k_distiller.distill_points,
        feat=dict(
            _base_.diffkd_in1k_distiller.distill_points.feat,
            connector=dict(
                _base_.diffkd_in1k_distiller.distill_points.feat.connector,
                student_channels=768,
                teacher_channels=1536,
                ae_channels=768))))
