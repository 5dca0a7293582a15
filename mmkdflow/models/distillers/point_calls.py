"""What one distillation point does in one step: run its connector (inside
the student's forward for ``replace`` points) and compute its losses.

Everything a call needs comes in as arguments (the point, its modules, the
:class:`~mmkdflow.models.core.DistillStep` and the student's
:class:`~mmkdflow.models.recorders.Recording`); nothing here refers to the
distiller, so a replacer handed to the recorder holds no reference back to
the model.
"""
from functools import partial
from typing import Any, Dict, List, Optional

from torch import Tensor
from torch.nn import Module

from ..connectors.base import BaseConnector, ConnectorOutput
from ..core import DistillContext, DistillStep
from ..recorders import Recording, Replacer
from .distill_point import DistillPoint, put_back, select


def run_connector(point: DistillPoint, connector: BaseConnector,
                  student: List[Tensor], teacher: Optional[List[Tensor]],
                  ctx: DistillContext, replaced: Any = None
                  ) -> ConnectorOutput:
    """Call ``connector`` on one point's tensors and check its answer.

    Args:
        point (DistillPoint): The distillation point.
        connector (BaseConnector): Its connector.
        student (list[Tensor]): The selected student tensors.
        teacher (list[Tensor], optional): The teacher tensors, or ``None`` at
            inference.
        ctx (DistillContext): The step's context.
        replaced (Any, optional): For a point that replaces a *later* module
            (``replace='head.fc'``), that module's own output, passed as
            ``connector(..., replaced=...)``; other points call the
            connector without it. Defaults to None.

    Returns:
        ConnectorOutput: The connector's checked output.

    Raises:
        TypeError: If the connector does not return a
            :class:`ConnectorOutput` with one student tensor per input.
    """
    if point.replaces_other_module:
        result = connector(student, teacher, ctx, replaced=replaced)
    else:
        result = connector(student, teacher, ctx)
    if not isinstance(result, ConnectorOutput) or \
            len(result.student) != len(student):
        raise TypeError(
            f'connector {type(connector).__name__} of point {point.name!r} '
            f'must return a ConnectorOutput with one student tensor per '
            f'input ({len(student)})')
    return result


def _replace(point: DistillPoint, connector: BaseConnector,
             step: DistillStep, output: Any, record: Recording) -> Any:
    where = f"student '{point.student}'"
    if point.replaces_other_module:
        student = select(record.get(point.student), point.student_index,
                         where)
        index, replaced = None, output
    else:
        student = select(output, point.student_index, where)
        index, replaced = point.student_index, None
    result = run_connector(point, connector, student,
                           step.teacher_tensors(point.name), step.ctx,
                           replaced)
    step.replaced[point.name] = result
    return put_back(output, index, result.student)


def replacers(points: List[DistillPoint], connectors: Dict[str, Module],
              step: DistillStep) -> Dict[str, Replacer]:
    """The student recorder's replacers of one step: for each ``replace``
    point, its connector's output takes the place of the replaced module's
    output, and the connector's result is kept in ``step.replaced``.

    Returns:
        dict[str, Replacer]: ``{module path: replacer}``.
    """
    return {
        point.replace_path: partial(_replace, point,
                                    connectors[point.name], step)
        for point in points if point.replace
    }


def point_losses(point: DistillPoint, connector: Optional[BaseConnector],
                 loss_fn: Optional[Module], step: DistillStep,
                 record: Recording) -> Dict[str, Tensor]:
    """The losses of one point, logged as ``distill.<point>.<name>``: the
    connector's own losses and ``loss`` of its distance between the
    (connected) student and the (possibly connector-given) teacher tensors.

    A student tensor may differ from its teacher tensor in spatial size
    when the loss adapts it (its ``align``, e.g.
    ``PKDLoss(resize_stu=True)``); the shapes must match after that.

    Returns:
        dict[str, Tensor]: ``{distill.<point>.<name>: loss}``.

    Raises:
        ValueError: If a student and a teacher tensor differ in shape.
    """
    teacher = step.teacher.get(point.name)
    if point.replace:
        result = step.replaced.get(point.name)
        if result is None:
            raise RuntimeError(
                f"distill point {point.name!r}: the replaced student module "
                f"'{point.replace_path}' did not run in the student's "
                f'forward, so its connector never ran')
    else:
        student = select(record.get(point.student), point.student_index,
                         f"student '{point.student}'")
        result = ConnectorOutput(student=student) if connector is None \
            else run_connector(point, connector, student, teacher, step.ctx)
    prefix = f'distill.{point.name}.'
    losses = {prefix + k: v for k, v in result.losses.items()}
    if loss_fn is None:
        return losses
    targets = result.teacher if result.teacher is not None else teacher
    total = 0.
    align = getattr(loss_fn, 'align', None)
    # a loss that maps the student's channels (ViTKDLoss) checks shapes
    own_check = getattr(loss_fn, 'maps_channels', False)
    for level, (s, t) in enumerate(zip(result.student, targets)):
        if not own_check and s.shape != t.shape and (
                align is None or align(s, t).shape != t.shape):
            raise ValueError(
                f'distill point {point.name!r} (entry {level}): student '
                f"tensor {tuple(s.shape)} from '{point.student}' does not "
                f'match teacher tensor {tuple(t.shape)} from '
                f"'{point.teacher}'; add a connector that maps the student "
                f'to the teacher shape, read matching modules, or use a '
                f'loss that resizes the student (PKDLoss(resize_stu=True))')
        total = total + loss_fn(s, t, step.ctx)
    losses[prefix + 'loss'] = total
    return losses
