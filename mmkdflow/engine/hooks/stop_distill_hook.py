"""Stop distillation at a given epoch: the student then trains alone."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop

from mmkdflow.registry import HOOKS


@HOOKS.register_module()
class StopDistillHook(Hook):
    """From epoch ``stop_epoch`` on (0-based, as ``runner.epoch``), the
    distiller trains the student alone: no teacher forward and no
    distillation losses (``Distiller.distill_stopped``).

    This is MMRazor's ``StopDistillHook`` (e.g. the RTMDet recipe's last 20
    epochs without mosaic: ``stop_epoch=280`` of 300). The switch is
    derived from the epoch before every training epoch, so a resumed run
    (also one resumed inside an epoch) is in the same state as the
    interrupted one, with nothing kept in the checkpoint.

    Connectors whose output replaces a student module (``replace``) keep
    running in the student's forward, as at inference. Under DDP, the
    distillation-only parameters (connectors) get no gradient after the
    stop: set ``find_unused_parameters=True``.

    Args:
        stop_epoch (int): The first epoch trained without distillation (>= 0).
    """

    priority = 'NORMAL'

    def __init__(self, stop_epoch: int) -> None:
        if isinstance(stop_epoch, bool) or not isinstance(stop_epoch, int) \
                or stop_epoch < 0:
            raise ValueError(
                f'StopDistillHook: stop_epoch must be an integer >= 0 (the '
                f'first epoch without distillation), got {stop_epoch!r}')
        self.stop_epoch = stop_epoch

    def before_train(self, runner) -> None:
        """Refuse a model without the switch and an iteration-based loop
        (whose ``epoch`` never advances)."""
        model = self._distiller(runner)
        if not hasattr(model, 'distill_stopped'):
            raise TypeError(
                f'StopDistillHook needs an mmkdflow Distiller, got '
                f'{type(model).__name__}')
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            raise ValueError(
                f'StopDistillHook counts epochs, but the train loop is a '
                f'{type(runner.train_loop).__name__}; use an epoch-based '
                f'train_cfg (by_epoch=True)')

    def before_train_epoch(self, runner) -> None:
        """Set the switch from the epoch about to run."""
        model = self._distiller(runner)
        stopped = runner.epoch >= self.stop_epoch
        if stopped and not model.distill_stopped:
            runner.logger.info(
                f'StopDistillHook: distillation stopped at epoch '
                f'{runner.epoch + 1} (stop_epoch={self.stop_epoch}); the '
                f'student trains alone')
        model.distill_stopped = stopped

    @staticmethod
    def _distiller(runner):
        return runner.model.module if is_model_wrapper(
            runner.model) else runner.model
