from .connector_ema_hook import ConnectorEMAHook
from .safe_training_hook import SafeTrainingHook
from .stop_distill_hook import StopDistillHook
from .student_checkpoint_hook import StudentCheckpointHook
from .teacher_reference_hook import TeacherReferenceHook

__all__ = [
    'ConnectorEMAHook', 'SafeTrainingHook', 'StopDistillHook',
    'StudentCheckpointHook', 'TeacherReferenceHook'
]
