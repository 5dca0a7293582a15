# CIFAR-100 through mmpretrain's CIFAR100 dataset, laid out as mmpretrain
# expects: data/cifar100/cifar-100-python/{train,test,meta} (the python
# version of the archive; mmpretrain downloads it there when missing).
# Batch 64 on one GPU (strategy A1 of DiffKD's Table 1, total batch 64).
# Augmentation "crop + flip": a 32x32 random crop of the image zero-padded
# by 4 pixels, and a horizontal flip with p = 0.5. Normalised with the
# CIFAR-100 channel mean and std (RGB, 0..255), as the CRD zoo.
dataset_type = 'CIFAR100'
data_root = 'data/cifar100'
data_preprocessor = dict(
    num_classes=100,
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418],
    # the dataset yields RGB images
    to_rgb=False)
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
