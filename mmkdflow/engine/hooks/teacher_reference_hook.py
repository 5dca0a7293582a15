"""Evaluate the teacher once on the validation set, for reference."""
from typing import Dict

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmkdflow.registry import HOOKS


@HOOKS.register_module()
class TeacherReferenceHook(Hook):
    """Before training, run the validation loop's dataloader and evaluator
    with the distiller's teacher and log the metrics as ``teacher/<name>``,
    so the student's numbers can be read against the teacher's (message
    hub scalars and the visualizer's backends, e.g. ``scalars.json``).

    The result is also kept in the message hub under the info key
    ``teacher_metrics``.
    """

    priority = 'NORMAL'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if getattr(model, 'teacher', None) is None:
            raise ValueError('TeacherReferenceHook needs a distiller with a '
                             'teacher')
        if runner.val_loop is None:
            raise ValueError('TeacherReferenceHook needs val_dataloader, '
                             'val_evaluator and val_cfg in the config')
        metrics = self.evaluate_teacher(runner, model)
        runner.message_hub.update_info('teacher_metrics', metrics)
        scalars = {f'teacher/{k}': v for k, v in metrics.items()
                   if isinstance(v, (int, float))}
        for name, value in scalars.items():
            runner.message_hub.update_scalar(name, value)
        runner.visualizer.add_scalars(scalars)
        text = '  '.join(f'{k}: {v:.4f}' if isinstance(v, float) else
                         f'{k}: {v}' for k, v in metrics.items())
        runner.logger.info(f'teacher reference: {text}')

    @staticmethod
    def evaluate_teacher(runner, model) -> Dict:
        loop = runner.val_loop
        previous = model.predict_with
        was_training = model.training
        model.predict_with = 'teacher'
        model.eval()
        try:
            with torch.no_grad():
                for data_batch in loop.dataloader:
                    outputs = runner.model.val_step(data_batch)
                    loop.evaluator.process(
                        data_samples=outputs, data_batch=data_batch)
            return loop.evaluator.evaluate(len(loop.dataloader.dataset))
        finally:
            model.predict_with = previous
            model.train(was_training)
