"""Write a student-only checkpoint next to every distiller checkpoint."""
import os.path as osp
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from mmkdflow.registry import HOOKS
from mmkdflow.engine.checkpoint import save_atomic
from ..checkpoint.layout import deploy_checkpoint, student_checkpoint
from ..student_export import deploy_points


@HOOKS.register_module()
class StudentCheckpointHook(Hook):
    """After each checkpoint ``epoch_N.pth``, write ``epoch_N_student.pth``:
    the student's weights alone, loadable by the downstream package.

    The student weights are taken from the checkpoint dict itself (in
    ``before_save_checkpoint``), and written atomically once the checkpoint
    file exists. For plain FM-KT, whose flow is part of the deployed model,
    the file holds the student *with* its inference-time connectors (EMA
    weights when :class:`ConnectorEMAHook` keeps them), as
    ``tools/export_student.py`` writes it (which also writes the config).

    Args:
        suffix (str): Appended to the checkpoint's stem. Defaults to
            '_student'.
    """

    priority = 'LOWEST'

    def __init__(self, suffix: str = '_student') -> None:
        self.suffix = suffix
        self._pending: Optional[dict] = None
        self._target: Optional[str] = None
        self._points: Optional[list] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        target = runner.message_hub.get_info('last_ckpt')
        if target is None:
            return
        if self._points is None:
            self._points = deploy_points(runner.cfg)
        self._pending = deploy_checkpoint(checkpoint, self._points) \
            if self._points else student_checkpoint(checkpoint)
        self._target = target

    def _flush(self, runner) -> None:
        if self._pending is None or not is_main_process():
            return
        if not osp.isfile(self._target):
            return
        stem, ext = osp.splitext(self._target)
        out = f'{stem}{self.suffix}{ext or ".pth"}'
        save_atomic(self._pending, out)
        runner.logger.info(f'student-only checkpoint saved to {out}')
        self._pending = None

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self._flush(runner)

    def after_train_epoch(self, runner) -> None:
        self._flush(runner)

    def after_train(self, runner) -> None:
        self._flush(runner)
