from .autocast_optim_wrapper import AutocastOptimWrapper
from .hooks import (ConnectorEMAHook, ResumeStateHook, SafeCheckpointHook,
                    StudentCheckpointHook, TeacherReferenceHook)
from .nonfinite_guard import (NonFiniteGuardAmpOptimWrapper,
                              NonFiniteGuardAutocastOptimWrapper,
                              NonFiniteGuardMixin, NonFiniteGuardOptimWrapper,
                              NonFiniteLossError)
from .optim_setup import apply_amp, apply_nonfinite_guard
from .resumable_loop import (ResumableEpochBasedTrainLoop,
                             ResumableIterBasedTrainLoop)
from .student_export import (export_distiller, student_checkpoint,
                             student_config)

__all__ = ['AutocastOptimWrapper', 'ConnectorEMAHook', 'ResumeStateHook',
           'NonFiniteGuardAmpOptimWrapper',
           'NonFiniteGuardAutocastOptimWrapper', 'NonFiniteGuardMixin',
           'NonFiniteGuardOptimWrapper', 'NonFiniteLossError',
           'ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop',
           'SafeCheckpointHook', 'StudentCheckpointHook',
           'TeacherReferenceHook', 'apply_amp', 'apply_nonfinite_guard',
           'export_distiller', 'student_checkpoint', 'student_config']
