from .autocast_optim_wrapper import AutocastOptimWrapper
from .checkpoint import (ResumableEpochBasedTrainLoop,
                         ResumableIterBasedTrainLoop, ResumeStateHook,
                         SafeCheckpointHook)
from .hooks import (ConnectorEMAHook, SafeTrainingHook, StudentCheckpointHook,
                    TeacherReferenceHook)
from .nonfinite_guard import (NonFiniteGuardAmpOptimWrapper,
                              NonFiniteGuardAutocastOptimWrapper,
                              NonFiniteGuardMixin, NonFiniteGuardOptimWrapper,
                              NonFiniteLossError, guard_optim_wrapper)
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
