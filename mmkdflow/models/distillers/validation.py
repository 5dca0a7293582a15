"""Build-time checks of a distiller's settings, in the user's terms.

Settings that cannot be meant (a negative weight, an index past the last
output of a module) are refused when the model is built, not at the first
iteration, and every message names the distillation point, the setting and
the fix.
"""
import contextlib
from typing import (Dict, Iterable, Iterator, List, Optional,
                    Sequence, Set)

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
    ``None`` when unknown.

    Returns:
        int | None: The number of outputs, or ``None`` when unknown.
    """
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
        point (str): The distillation point's name.
        side (str): ``'student'`` or ``'teacher'``.
        path (str): The module's dotted path.
        module (nn.Module): The module read.
        index (Sequence[int], optional): The selected entries (``None``: the
            whole output).
        key (str): The config key that set them (``index``, ``student_index``).

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


def declared_channels(module: nn.Module,
                      index: Optional[Sequence[int]] = None
                      ) -> Optional[List[int]]:
    """The channels (or features) of each tensor ``module`` declares it
    returns, for the entries ``index`` selects (``None``: all); ``None``
    when unknown.

    Read from ``out_channels`` / ``out_features`` (convolutions, linears,
    necks), ``num_features`` per ``out_indices`` entry (Swin's
    ``(B, C, H, W)`` stages), ``embed_dims`` (ViT / DeiT backbones and
    their layers: ``(B, N, C)`` tokens or the ``(B, C)`` class token) and
    a LayerNorm's ``normalized_shape`` (ViT's final norm ``ln1``).

    Returns:
        list[int] | None: The channels per selected entry, or ``None`` when
        unknown.
    """
    stages = getattr(module, 'num_features', None)
    outs = getattr(module, 'out_indices', None)
    if isinstance(stages, (list, tuple)) and isinstance(outs, (list, tuple)):
        per_out = [stages[i] for i in outs]  # index range checked before
        return per_out if index is None else [per_out[i] for i in index]
    value = None
    for attr in ('out_channels', 'out_features', 'embed_dims'):
        value = getattr(module, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            break
        value = None
    if value is None and isinstance(module, nn.LayerNorm):
        value = module.normalized_shape[-1]
    if value is None:
        return None
    count = len(index) if index is not None else \
        declared_num_outputs(module) or 1
    return [value] * count


def check_points(points: Iterable, student_modules: Dict[str, nn.Module],
                 teacher_modules: Dict[str, nn.Module],
                 with_connector: Set[str]) -> None:
    """Build-time checks of every distillation point: ``index`` ranges
    (:func:`check_index_range`) and, for points without a connector, equal
    declared channel counts (:func:`declared_channels`, per selected entry)
    of the student and teacher modules.

    Args:
        points (Iterable): The parsed ``DistillPoint`` s.
        student_modules (dict): Module path -> student module read.
        teacher_modules (dict): Module path -> teacher module read.
        with_connector (set[str]): Names of the points that have a connector,
            or a loss that maps the student's channels itself
            (``maps_channels``, e.g. :class:`~mmkdflow.models.losses.
            ViTKDLoss`).

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
        s_ch = declared_channels(student_modules[point.student],
                                 point.student_index)
        t_ch = declared_channels(teacher_modules[point.teacher],
                                 point.teacher_index)
        if s_ch is None or t_ch is None or len(s_ch) != len(t_ch):
            continue
        for level, (s, t) in enumerate(zip(s_ch, t_ch)):
            if s == t:
                continue
            entry = f' (entry {level})' if len(s_ch) > 1 else ''
            raise ValueError(
                f'distill point {point.name!r}{entry}: student '
                f"'{point.student}' gives {s} channels but teacher "
                f"'{point.teacher}' gives {t}; add a connector such as "
                f"dict(type='ConvAdapter', in_channels={s}, "
                f'out_channels={t}) or read matching modules')
