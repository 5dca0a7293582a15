# The runtime of a distillation run: inherit it beside the student's config,
#   _base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py',
#             'mmkdflow::_base_/default_runtime_distill.py']
# and every entry point (tools/train.py, mmdet's or mmseg's or mmpretrain's
# tools, mim train, Runner.from_cfg(cfg).train()) runs with:
#   - atomic checkpoints, rotated only after the new one is in place;
#   - resume inside an epoch, with the interrupted run's random draws;
#   - a NaN/Inf loss or gradient stopping the run before the weights change
#     (nonfinite='skip' skips the step, 'off' turns the check off);
#   - the teacher-cache check, the resume checkpoint chosen among the work
#     dir's own files, and weights-only reads of every checkpoint.
# A config that sets its own custom_hooks keeps these two with
#   custom_hooks = [*_base_.safe_training_hooks, dict(type=...)]
safe_training_hooks = [
    dict(type='mmkdflow.SafeTrainingHook', nonfinite='raise'),
    dict(type='mmkdflow.ResumeStateHook'),
]
custom_hooks = safe_training_hooks
