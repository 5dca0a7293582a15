from .autocast_optim_wrapper import AutocastOptimWrapper
from .hooks import (ConnectorEMAHook, ResumeStateHook, SafeCheckpointHook,
                    SafeTrainingHook, StudentCheckpointHook,
                    TeacherReferenceHook)
from .nonfinite_guard import (NonFiniteGuardAmpOptimWrapper,
                              NonFiniteGuardAutocastOptimWrapper,
                              NonFiniteGuardMixin, NonFiniteGuardOptimWrapper,
                              NonFiniteLossError, guard_optim_wrapper)
from .resumable_loop import (ResumableEpochBasedTrainLoop,
                             ResumableIterBasedTrainLoop)
from .student_export import (export_distiller, student_checkpoint,
                             student_config)

__all__ = ['AutocastOptimWrapper', 'ConnectorEMAHook', 'ResumeStateHook',
           'NonFiniteGuardAmpOptimWrapper',
           'NonFiniteGuardAutocastOptimWrapper', 'NonFiniteGuardMixin',
           'NonFiniteGuardOptimWrapper', 'NonFiniteLossError',
           'ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop',
           'SafeCheckpointHook', 'SafeTrainingHook', 'StudentCheckpointHook',
           'TeacherReferenceHook', 'export_distiller', 'guard_optim_wrapper',
           'student_checkpoint', 'student_config']
