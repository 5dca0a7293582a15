from .hooks import StudentCheckpointHook, TeacherReferenceHook
from .student_export import student_checkpoint, student_config

__all__ = ['StudentCheckpointHook', 'TeacherReferenceHook',
           'student_checkpoint', 'student_config']
