"""One call of the distiller as an object: the state that flows from the
teacher's forward through the student's forward to the losses."""
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional

from torch import Tensor

from .context import DistillContext

if TYPE_CHECKING:  # the connector protocol builds on the core types
    from ..connectors.base import ConnectorOutput


@dataclass
class DistillStep:
    """The state of one distiller call (``loss``, ``predict`` or
    ``tensor``), handed as an argument to whatever needs it.

    The distiller creates one at the start of a call and drops it at the
    end; it never stores it, so two calls (two distillers in one process,
    or a forward run inside another one) never share their tensors, and no
    tensor of a step outlives it.

    Attributes:
        ctx (DistillContext): What connectors and losses may know (labels,
            epoch, iteration, training or inference).
        teacher (dict): ``{point name: teacher tensors}`` recorded by the
            teacher's forward (empty at inference and for points without a
            teacher). Defaults to an empty dict.
        replaced (dict): ``{point name: ConnectorOutput}`` of the points whose
            connector ran inside the student's forward (``replace``), kept
            for their losses. Defaults to an empty dict.
    """

    ctx: DistillContext
    teacher: Dict[str, List[Tensor]] = field(default_factory=dict)
    replaced: Dict[str, 'ConnectorOutput'] = field(default_factory=dict)

    def teacher_tensors(self, name: str) -> Optional[List[Tensor]]:
        """The teacher tensors of point ``name`` in training; ``None`` at
        inference or for a point without a teacher.

        Returns:
            list[Tensor] | None: The teacher tensors, or ``None``.
        """
        return self.teacher.get(name) if self.ctx.training else None
