from .autocast_optim_wrapper import AutocastOptimWrapper
from .hooks import (ConnectorEMAHook, ResumeStateHook, SafeCheckpointHook,
                    StudentCheckpointHook, TeacherReferenceHook)
from .resumable_loop import (ResumableEpochBasedTrainLoop,
                             ResumableIterBasedTrainLoop)
from .student_export import (export_distiller, student_checkpoint,
                             student_config)

__all__ = ['AutocastOptimWrapper', 'ConnectorEMAHook', 'ResumeStateHook',
           'ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop',
           'SafeCheckpointHook',
           'StudentCheckpointHook', 'TeacherReferenceHook', 'export_distiller',
           'student_checkpoint', 'student_config']
