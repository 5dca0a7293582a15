# Schedule of every DigitsDet student run (alone and with each distillation
# method): half the teacher's 12 epochs, so that `make demo` trains five
# students in its time budget; identical for every method.
_base_ = './digits_det_schedule.py'
max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs,
         milestones=[4, 5], gamma=0.1),
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
