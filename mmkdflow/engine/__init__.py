from .autocast_optim_wrapper import AutocastOptimWrapper
from .hooks import StudentCheckpointHook, TeacherReferenceHook
from .student_export import student_checkpoint, student_config

__all__ = ['AutocastOptimWrapper', 'StudentCheckpointHook', 'TeacherReferenceHook',
           'student_checkpoint', 'student_config']
