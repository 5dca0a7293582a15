# Strategy A1 of DiffKD's Table 1 (the CRD recipe for CIFAR-100): 240
# epochs, total batch 64 (1 GPU x 64, ../datasets/cifar100_bs64.py, which
# also holds its "crop + flip" augmentation), SGD lr 0.05, momentum 0.9,
# weight decay 5e-4, lr x 0.1 at epochs 150, 180 and 210; no label
# smoothing, no EMA. (CRD's own script lowers the lr to 0.01 for
# MobileNetV2 and ShuffleNet students; Table 1 gives 0.05 for all rows.)
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[150, 180, 210], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=240, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)
