from .connector_ema_hook import ConnectorEMAHook
from .resume_state_hook import ResumeStateHook
from .student_checkpoint_hook import StudentCheckpointHook
from .teacher_reference_hook import TeacherReferenceHook

__all__ = ['ConnectorEMAHook', 'ResumeStateHook', 'StudentCheckpointHook',
           'TeacherReferenceHook']
