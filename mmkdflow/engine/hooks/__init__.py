from .connector_ema_hook import ConnectorEMAHook
from .resume_state_hook import ResumeStateHook
from .safe_checkpoint_hook import (SafeCheckpointHook, find_resume_checkpoint,
                                   resumable_checkpoints)
from .student_checkpoint_hook import StudentCheckpointHook
from .teacher_reference_hook import TeacherReferenceHook

__all__ = ['ConnectorEMAHook', 'ResumeStateHook', 'SafeCheckpointHook',
           'StudentCheckpointHook', 'TeacherReferenceHook',
           'find_resume_checkpoint', 'resumable_checkpoints']
