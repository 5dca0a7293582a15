# Backbone pretraining of the demo's detection and segmentation models on
# DigitsCls (the train split only: 1,437 crops of 32x32, 45 iterations per
# epoch at batch 32): the digits counterpart of the ImageNet-pretrained
# backbones the COCO and Cityscapes recipes start from. Every detection and
# segmentation model of the demo (teacher, student alone, every method)
# loads its backbone from this pretraining through
# init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.').
_base_ = ['./digits_cls_schedule.py', '../datasets/digits_cls.py']
max_epochs = 6
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(type='CosineAnnealingLR', by_epoch=True,
                       T_max=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
