"""Build-time checks of a distiller's settings, in the user's terms.

Settings that cannot be meant (a negative weight, an index past the last
output of a module) are refused when the model is built, not at the first
iteration, and every message names the distillation point, the setting and
the fix.
"""
import contextlib
from typing import Dict, Iterable, Iterator, Optional, Sequence, Set

import torch.nn as nn


@contextlib.contextmanager
def about_point(point: str, part: str) -> Iterator[None]:
    """Prefix a ``ValueError``/``TypeError`` raised while building part of
    a distillation point (its connector or loss) with the point's name."""
    try:
        yield
    except (ValueError, TypeError) as err:
        try:
            named = type(err)(f'distill point {point!r}, {part}: {err}')
        except Exception:  # an exception type with other arguments
            raise err
        raise named from err


def declared_num_outputs(module: nn.Module) -> Optional[int]:
    """How many tensors ``module`` returns, when its settings say so without
    running it: ``num_outs`` of FPN-like necks, ``out_indices`` of
    backbones (mmdet, mmseg and mmpretrain ResNets, MobileNets ...);
    ``None`` when unknown."""
    num_outs = getattr(module, 'num_outs', None)
    if isinstance(num_outs, int) and not isinstance(num_outs, bool):
        return num_outs
    out_indices = getattr(module, 'out_indices', None)
    if isinstance(out_indices, (list, tuple)) and out_indices:
        return len(out_indices)
    return None


def check_index_range(point: str, side: str, path: str, module: nn.Module,
                      index: Optional[Sequence[int]], key: str) -> None:
    """Refuse entries of ``index`` outside the outputs ``module`` declares.

    Args:
        point: The distillation point's name.
        side: ``'student'`` or ``'teacher'``.
        path: The module's dotted path.
        module: The module read.
        index: The selected entries (``None``: the whole output).
        key: The config key that set them (``index``, ``student_index``).

    Raises:
        IndexError: Naming the point, the module, how many tensors it
            returns and the valid range.
    """
    if index is None:
        return
    count = declared_num_outputs(module)
    if count is None:
        return
    bad = [i for i in index if not -count <= i < count]
    if bad:
        raise IndexError(
            f'distill point {point!r}: {key} {list(index)} selects entry '
            f'{bad[0]} of {side} {path!r}, which returns {count} tensors '
            f'({type(module).__name__}); use indices 0..{count - 1} (or '
            f'-{count}..-1 from the end), or change the module\'s number of '
            f'outputs')


def declared_channels(module: nn.Module) -> Optional[int]:
    """The channels (or features) ``module`` declares it outputs
    (``out_channels``, ``out_features``); ``None`` when unknown."""
    for attr in ('out_channels', 'out_features'):
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    return None


def check_points(points: Iterable, student_modules: Dict[str, nn.Module],
                 teacher_modules: Dict[str, nn.Module],
                 with_connector: Set[str]) -> None:
    """Build-time checks of every distillation point: ``index`` ranges
    (:func:`check_index_range`) and, for points without a connector, equal
    declared channel counts of the student and teacher modules.

    Args:
        points: The parsed ``DistillPoint`` s.
        student_modules: Module path -> student module read.
        teacher_modules: Module path -> teacher module read.
        with_connector: Names of the points that have a connector.

    Raises:
        IndexError: An index past a module's declared outputs.
        ValueError: Different channel counts without a connector, naming
            both and the adapter that maps one to the other.
    """
    for point in points:
        check_index_range(point.name, 'student', point.student,
                          student_modules[point.student],
                          point.student_index, point.student_index_key)
        if point.teacher is None:
            continue
        check_index_range(point.name, 'teacher', point.teacher,
                          teacher_modules[point.teacher],
                          point.teacher_index, point.teacher_index_key)
        if point.name in with_connector:
            continue
        s_ch = declared_channels(student_modules[point.student])
        t_ch = declared_channels(teacher_modules[point.teacher])
        if s_ch is not None and t_ch is not None and s_ch != t_ch:
            raise ValueError(
                f'distill point {point.name!r}: student '
                f"'{point.student}' gives {s_ch} channels but teacher "
                f"'{point.teacher}' gives {t_ch}; add a connector such as "
                f"dict(type='ConvAdapter', in_channels={s_ch}, "
                f'out_channels={t_ch}) or read matching modules')
