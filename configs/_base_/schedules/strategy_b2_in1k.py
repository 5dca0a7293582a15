# Strategy B2 of DiffKD's Table 1 (the strong ImageNet strategy of DIST):
#   450 epochs, total batch 768 (8 GPUs x 96), RMSProp, lr 0.048, weight
#   decay 1e-5, label smoothing 0.1, model EMA 0.9999, lr x 0.97 every 2.4
#   epochs, augmentation B1 (random resized crop + flip) + RandAugment +
#   random erasing.
# Built from mmpretrain's pieces: its ImageNet data settings, RandAugment
# ('timm_increasing', m9, std 0.5) and RandomErasing transforms,
# LabelSmoothLoss and MMEngine's EMAHook. What the table leaves open
# follows timm's EfficientNet recipe, whose numbers B2 are: RMSProp
# alpha 0.9, momentum 0.9, eps 1e-3 (torch's RMSprop adds eps outside the
# square root, timm's RMSpropTF inside), random erasing with p = 0.2 in
# per-pixel random colour, no warm-up. The staircase decay is timm's
# lr * 0.97 ** floor(epoch / 2.4): MultiStepLR at every epoch where
# floor(epoch / 2.4) grows (3, 5, 8, 10, 12, ...).
# A config that inherits this file sets the student's head loss to
# strategy_b2_head_loss and adds strategy_b2_hooks to its custom_hooks.
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs32.py']

bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(pad_val=[round(x) for x in bgr_mean])),
    dict(
        type='RandomErasing',
        erase_prob=0.2,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=bgr_mean,
        fill_std=bgr_std),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=96, dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    optimizer=dict(
        type='RMSprop',
        lr=0.048,
        alpha=0.9,
        momentum=0.9,
        eps=1e-3,
        weight_decay=1e-5))
param_scheduler = dict(
    type='MultiStepLR',
    by_epoch=True,
    milestones=[e for e in range(1, 450) if e * 5 // 12 > (e - 1) * 5 // 12],
    gamma=0.97)
train_cfg = dict(by_epoch=True, max_epochs=450, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=768)

# label smoothing 0.1 ('original': (1 - 0.1) * one-hot + 0.1 / K)
strategy_b2_head_loss = dict(
    type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')
# EMA of the whole model, decay 0.9999 (MMEngine momentum = 1 - decay);
# validation and test run with the averaged weights
strategy_b2_hooks = [
    dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')]
