"""One distillation point: where to read, how to connect, what to match."""
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple, Union

from torch import Tensor

Index = Optional[Union[int, Sequence[int]]]

_KEYS = {'student', 'teacher', 'index', 'student_index', 'teacher_index',
         'connector', 'loss', 'replace'}


def _normalise_index(index: Index, where: str) -> Optional[Tuple[int, ...]]:
    if index is None:
        return None
    if isinstance(index, int):
        return (index, )
    if isinstance(index, (list, tuple)) and all(
            isinstance(i, int) for i in index) and len(index) > 0:
        return tuple(index)
    raise ValueError(
        f'{where} must be None, an int or a non-empty list of ints (e.g. '
        f'(0, 1, 2, 3, 4) for five FPN levels), got {index!r}')


@dataclass
class DistillPoint:
    """A parsed distillation point.

    Config keys (``distill_points=dict(<name>=dict(...))``):
        student: Dotted path of the student module to read (``'neck'``).
        teacher: Dotted path of the teacher module, or ``None`` for a
            connector that needs no teacher (online distillation).
        index / student_index / teacher_index: Entries of a tuple output to
            use (an int or a list, e.g. FPN levels); ``None`` takes the
            output itself. ``index`` sets both.
        connector: Optional connector config (``BaseConnector``).
        loss: Optional loss config, applied to each (student, teacher) pair
            after the connector.
        replace: ``True``: the connector's student tensors replace the
            output of the module read (at the selected indices) in training
            and inference. A module path (e.g. ``'head.fc'`` while reading
            ``'backbone'``): the connector's single output replaces that
            later module's output instead.
    """

    name: str
    student: str
    teacher: Optional[str]
    student_index: Optional[Tuple[int, ...]]
    teacher_index: Optional[Tuple[int, ...]]
    replace_path: Optional[str]
    connector_cfg: Any
    loss_cfg: Any
    #: The config keys that set the indices (for messages).
    student_index_key: str = 'index'
    teacher_index_key: str = 'index'

    @classmethod
    def from_cfg(cls, name: str, cfg: dict) -> 'DistillPoint':
        if not isinstance(cfg, dict):
            raise TypeError(f'distill point {name!r} must be a dict')
        unknown = set(cfg) - _KEYS
        if unknown:
            raise ValueError(
                f'distill point {name!r} has unknown keys {sorted(unknown)}; '
                f'allowed: {sorted(_KEYS)}')
        if 'student' not in cfg:
            raise ValueError(
                f"distill point {name!r} needs `student`, the dotted path of "
                f"the student module to read (e.g. 'neck')")
        if '.' in name:
            raise ValueError(
                f'distill point name {name!r} must not contain dots (it is '
                f'used in log keys distill.<name>.<loss>)')
        index = cfg.get('index')
        s_index = _normalise_index(cfg.get('student_index', index),
                                   f'{name}.student_index')
        t_index = _normalise_index(cfg.get('teacher_index', index),
                                   f'{name}.teacher_index')
        if s_index is not None and t_index is not None and \
                len(s_index) != len(t_index):
            raise ValueError(
                f'distill point {name!r}: student_index {s_index} and '
                f'teacher_index {t_index} select different numbers of '
                f'tensors')
        replace = cfg.get('replace', False)
        if not isinstance(replace, (bool, str)) or replace == '':
            raise ValueError(
                f'distill point {name!r}: replace must be True/False or the '
                f"path of a later student module (e.g. 'head.fc'), got "
                f'{replace!r}')
        replace_path = cfg['student'] if replace is True else (
            replace or None)
        if replace_path is not None and cfg.get('connector') is None:
            raise ValueError(
                f'distill point {name!r} has replace=True but no connector; '
                f'replace feeds the connector output into the student')
        if cfg.get('teacher') is None and cfg.get('loss') is not None:
            raise ValueError(
                f'distill point {name!r} has a loss but no teacher module; '
                f'set `teacher` or let the connector compute its own loss')
        return cls(name=name, student=cfg['student'],
                   teacher=cfg.get('teacher'), student_index=s_index,
                   teacher_index=t_index, replace_path=replace_path,
                   connector_cfg=cfg.get('connector'),
                   loss_cfg=cfg.get('loss'),
                   student_index_key='student_index'
                   if 'student_index' in cfg else 'index',
                   teacher_index_key='teacher_index'
                   if 'teacher_index' in cfg else 'index')


    @property
    def replace(self) -> bool:
        """Whether the connector output replaces a student module output."""
        return self.replace_path is not None

    @property
    def replaces_other_module(self) -> bool:
        """Whether the replaced module differs from the module read."""
        return self.replace_path not in (None, self.student)


def select(output: Any, index: Optional[Tuple[int, ...]], where: str
           ) -> List[Tensor]:
    """Pick the tensors of a recorded output as a list.

    Returns:
        list[Tensor]: The selected tensors.
    """
    if index is None:
        if isinstance(output, Tensor):
            return [output]
        if isinstance(output, (list, tuple)) and all(
                isinstance(o, Tensor) for o in output):
            return list(output)
        raise TypeError(
            f'{where} produced a {type(output).__name__}, not a tensor or a '
            f'tuple of tensors')
    if not isinstance(output, (list, tuple)):
        if index == (0, ) and isinstance(output, Tensor):
            return [output]
        raise TypeError(
            f'{where} produced a {type(output).__name__}, which cannot be '
            f'indexed with {index}; remove the index')
    for i in index:
        if not -len(output) <= i < len(output):
            raise IndexError(
                f'{where} produced {len(output)} tensors; index {i} is out '
                f'of range')
    return [output[i] for i in index]


def put_back(output: Any, index: Optional[Tuple[int, ...]],
             tensors: List[Tensor]) -> Any:
    """Return ``output`` with the selected entries replaced by ``tensors``
    (a new tuple/list; the original is never modified).

    Returns:
        Any: The output with the entries replaced.
    """
    if index is None:
        if isinstance(output, Tensor):
            return tensors[0]
        return type(output)(tensors)
    if isinstance(output, Tensor):
        return tensors[0]
    items = list(output)
    for i, tensor in zip(index, tensors):
        items[i] = tensor
    return type(output)(items)
