"""The measured units of the benchmark: forward+backward closures of the
student, a connector and the pointwise reference, the module wrappers the
FLOP counter traces, and one timed row."""
from typing import Callable, List, Optional

import torch.nn as nn
from torch import Tensor

from mmkdflow.models.core import DistillContext
from .measure import zero_grad

GIGA = 1e9


class ConnectorCall(nn.Module):
    """``connector(student, teacher)`` on flat tensor arguments, returning
    its losses and student tensors (what ``torch.jit.trace`` needs)."""

    def __init__(self, connector: nn.Module, num_levels: int) -> None:
        super().__init__()
        self.connector = connector
        self.num_levels = num_levels

    def forward(self, *tensors: Tensor):
        n = self.num_levels
        out = self.connector(list(tensors[:n]), list(tensors[n:]),
                             DistillContext(training=True))
        return tuple(out.losses.values()) + tuple(out.student)


class ExtractFeat(nn.Module):
    """A detector's ``extract_feat`` as a module call (teacher forward)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, inputs: Tensor):
        return tuple(self.detector.extract_feat(inputs))


class PointwiseReference(nn.Module):
    """The hardware's pointwise ceiling: 1x1 conv ``C -> 4C -> C`` on each
    level (plain GEMMs, no norm or activation), the bulk of a ConvNeXt
    meta-encoder's FLOPs. Its seconds per GFLOP, read against the
    student's, is the best a pointwise-heavy connector can reach on the
    device: dense 3x3 convolutions reuse each input element 9x more and
    run at a higher fraction of peak than any 1x1 GEMM."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, 4 * channels, 1)
        self.fc2 = nn.Conv2d(4 * channels, channels, 1)

    def forward(self, *levels: Tensor):
        return tuple(self.fc2(self.fc1(x)) for x in levels)


def flat_tensors(outputs) -> List[Tensor]:
    if isinstance(outputs, Tensor):
        return [outputs]
    return [t for item in outputs for t in flat_tensors(item)]


def student_fwd_bwd(student: nn.Module, inputs: Tensor) -> Callable[[], None]:
    """One forward (``mode='tensor'``: backbone, neck, head) and backward of
    the student network, without the loss computation."""

    def run() -> None:
        student.train()
        outs = flat_tensors(student(inputs, mode='tensor'))
        sum(o.float().mean() for o in outs).backward()
        zero_grad(student)

    return run


def connector_fwd_bwd(connector: nn.Module, student_feats: List[Tensor],
                      teacher_feats: List[Tensor]) -> Callable[[], None]:
    """One training forward and backward of a connector: its losses plus
    the mean of the student tensors it returns (their gradient would come
    from the student's head when they replace FPN levels)."""
    ctx = DistillContext(training=True)

    def run() -> None:
        connector.train()
        out = connector(student_feats, teacher_feats, ctx)
        total = sum(out.losses.values())
        total = total + sum(s.float().mean() for s in out.student
                            if s.requires_grad)
        total.backward()
        zero_grad(connector, tensors=student_feats)

    return run


def pointwise_fwd_bwd(reference: PointwiseReference,
                      student_feats: List[Tensor]) -> Callable[[], None]:
    """Forward and backward of :class:`PointwiseReference`."""

    def run() -> None:
        sum(o.mean() for o in reference(*student_feats)).backward()
        zero_grad(reference, tensors=student_feats)

    return run



def timing_row(name: str, timing: dict, flops: int, params: int,
         memory: Optional[int] = None) -> dict:
    """One timed row: median seconds, all runs, GFLOPs, seconds per GFLOP,
    parameters and (when measured) peak memory in MB."""
    gflops = flops / GIGA
    row = dict(name=name, params=params, gflops=gflops,
               time_s=timing['median_s'], times_s=timing['times_s'])
    row['s_per_gflop'] = row['time_s'] / gflops if gflops > 0 else None
    if memory is not None:
        row['peak_mem_mb'] = memory / 2**20
    return row
