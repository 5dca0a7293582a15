from .autocast_optim_wrapper import AutocastOptimWrapper
from .hooks import (ConnectorEMAHook, ResumeStateHook, StudentCheckpointHook,
                    TeacherReferenceHook)
from .student_export import (export_distiller, student_checkpoint,
                             student_config)

__all__ = ['AutocastOptimWrapper', 'ConnectorEMAHook', 'ResumeStateHook',
           'StudentCheckpointHook', 'TeacherReferenceHook', 'export_distiller',
           'student_checkpoint', 'student_config']
