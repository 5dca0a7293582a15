# Schedule of every DigitsDet student run (alone and with each distillation
# method), identical for every method, with the data it trains on: batch 4
# at learning rate 0.005 (the teacher's 0.02 at batch 16, scaled linearly)
# for 4 epochs (800 iterations), decay at epoch 3. Batch 4 rather than 16:
# the same compute per epoch but 4x more updates, so the small student
# leaves RetinaNet's focal-loss plateau early and the seed spread shrinks
# (from scratch, 3 seeds of the student alone gave 3.7 +- 1.9 mAP with batch
# 16 x 6 epochs and 10.6 +- 0.9 with batch 4 x 5 epochs). Four epochs keep the
# default `make demo` (backbones, teacher and five student runs) within 15
# minutes on a 2-core CPU; the student is still improving at the end (see the
# learning curves in the README), which limits what any method can transfer.
_base_ = ['./digits_det_schedule.py', '../datasets/digits_det.py']
max_epochs = 4
train_dataloader = dict(batch_size=4)
# validation after every epoch: the learning curves of the demo's report
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
optim_wrapper = dict(optimizer=dict(lr=0.005))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs,
         milestones=[3], gamma=0.1),
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
