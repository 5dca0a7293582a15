# Strategy B3 of DiffKD's Table 1 (DIST's strategy for Swin students):
#   300 epochs, total batch 1024 (8 GPUs x 128), AdamW, lr 5e-4, weight
#   decay 0.05, label smoothing 0.1, no EMA, cosine schedule, augmentation
#   B2 (crop + flip + RandAugment + random erasing) + colour jitter + Mixup
#   + CutMix.
# Built from mmpretrain's Swin recipe (its ImageNet Swin data settings with
# RandAugment and RandomErasing, p = 0.25 there; its AdamW schedule with 20
# warm-up epochs and cosine decay; gradient clipping at 5 as in
# swin-tiny_16xb64_in1k) with the table's lr and batch, and mmpretrain's
# ColorJitter (0.4, timm's default strength), Mixup (alpha 0.8) and CutMix
# (alpha 1.0).
# A config that inherits this file sets the student's head loss to
# strategy_b3_head_loss and its train_cfg to strategy_b3_train_cfg (the
# batch augmentations run in the student's data preprocessor).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py'
]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(
            pad_val=[round(x) for x in _base_.bgr_mean],
            interpolation='bicubic')),
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=_base_.bgr_mean,
        fill_std=_base_.bgr_std),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128, dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(optimizer=dict(lr=5e-4), clip_grad=dict(max_norm=5.0))

strategy_b3_head_loss = dict(
    type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')
strategy_b3_train_cfg = dict(augments=[
    dict(type='Mixup', alpha=0.8),
    dict(type='CutMix', alpha=1.0)
])
