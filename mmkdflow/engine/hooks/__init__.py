from .connector_ema_hook import ConnectorEMAHook
from .resume_state_hook import ResumeStateHook
from .safe_checkpoint_hook import (SafeCheckpointHook, find_resume_checkpoint,
                                   resumable_checkpoints)
from .student_checkpoint_hook import StudentCheckpointHook
from .teacher_reference_hook import TeacherReferenceHook
from .safe_training_hook import SafeTrainingHook  # noqa: I001  (last: it
# imports the loops, which import resume_state_hook)

__all__ = ['ConnectorEMAHook', 'ResumeStateHook', 'SafeCheckpointHook',
           'SafeTrainingHook', 'StudentCheckpointHook', 'TeacherReferenceHook',
           'find_resume_checkpoint', 'resumable_checkpoints']
