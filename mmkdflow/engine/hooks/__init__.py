from .connector_ema_hook import ConnectorEMAHook
from .student_checkpoint_hook import StudentCheckpointHook
from .teacher_reference_hook import TeacherReferenceHook

__all__ = ['ConnectorEMAHook', 'StudentCheckpointHook', 'TeacherReferenceHook']
