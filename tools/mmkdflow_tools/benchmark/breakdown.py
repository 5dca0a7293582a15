"""Section e of ``tools/benchmark.py``: where a connector's time goes.

Seconds per GFLOP read a piece's time against its FLOPs, but the FLOP
counter counts only matrix products and convolutions. This section runs
the student network, DiffKD and FM-KT forward+backward under
``torch.profiler`` and sorts every operator's own time into four classes:

* ``gemm``: matrix products and convolutions, forward and backward (what
  the FLOPs count);
* ``norm``: batch / layer / group normalisation and the standard deviations
  of PKD's normalisation;
* ``activation``: GELU, ReLU and their backward;
* ``other``: element-wise arithmetic, copies, reductions, the random
  noise, the optimiser-free autograd bookkeeping.

From it: the share of each class, and the seconds per GFLOP of the
``gemm`` class alone against the student's overall seconds per GFLOP (the
goal's reference): when that ratio is near 1 while the whole connector's
is not, the gap is the uncounted work, not slow kernels.
"""
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from .builders import (build_connector, diffkd_connector_cfg,
                       fmkt_connector_cfg, random_fpn_features)
from .fwd_bwd import GIGA, ConnectorCall, connector_fwd_bwd, student_fwd_bwd
from .measure import count_flops

#: Operator names (exact) of the ``gemm`` class.
GEMM_OPS = frozenset({
    'aten::mm', 'aten::addmm', 'aten::bmm', 'aten::baddbmm',
    'aten::mkldnn_convolution', 'aten::convolution_backward',
    'aten::_convolution', 'aten::cudnn_convolution',
    'aten::_mkldnn_linear', 'aten::mkldnn_linear',
    'aten::_slow_conv2d_forward', 'aten::_slow_conv2d_backward',
    'aten::_nnpack_spatial_convolution', 'aten::matmul'})
#: Substrings of the ``norm`` and ``activation`` classes.
NORM_PARTS = ('batch_norm', 'layer_norm', 'group_norm', 'aten::std',
              'aten::var', 'rsqrt')
ACTIVATION_PARTS = ('gelu', 'relu', 'threshold_backward', 'silu', 'sigmoid')
CLASSES = ('gemm', 'norm', 'activation', 'other')


def op_class(name: str) -> str:
    """The class of one profiler operator name."""
    if name in GEMM_OPS:
        return 'gemm'
    if any(part in name for part in NORM_PARTS):
        return 'norm'
    if any(part in name for part in ACTIVATION_PARTS):
        return 'activation'
    return 'other'


def op_breakdown(run: Callable[[], None], device: torch.device,
                 repeats: int = 3) -> Dict[str, float]:
    """Seconds per call of ``run`` in each class of :data:`CLASSES` (own
    time of every operator, summed; ``total`` is their sum). ``run`` is
    called once untimed first."""
    run()
    activities = [torch.profiler.ProfilerActivity.CPU]
    attribute = 'self_cpu_time_total'
    if device.type == 'cuda':
        activities.append(torch.profiler.ProfilerActivity.CUDA)
        attribute = 'self_device_time_total'
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(repeats):
            run()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
    seconds = dict.fromkeys(CLASSES, 0.0)
    for event in prof.key_averages():
        seconds[op_class(event.key)] += getattr(event, attribute) / 1e6
    seconds = {k: v / repeats for k, v in seconds.items()}
    seconds['total'] = sum(seconds[k] for k in CLASSES)
    return seconds


def _row(name: str, seconds: Dict[str, float], flops: int,
         student: Optional[dict] = None) -> dict:
    gflops = flops / GIGA
    row = dict(name=name, gflops=gflops, total_s=seconds['total'],
               seconds={k: seconds[k] for k in CLASSES},
               shares={k: seconds[k] / seconds['total'] for k in CLASSES})
    row['s_per_gflop'] = seconds['total'] / gflops
    row['gemm_s_per_gflop'] = seconds['gemm'] / gflops
    if student is not None:
        row['s_per_gflop_rel_student'] = \
            row['s_per_gflop'] / student['s_per_gflop']
        row['gemm_s_per_gflop_rel_student'] = \
            row['gemm_s_per_gflop'] / student['s_per_gflop']
    return row


def breakdown_section(student: nn.Module, inputs: Tensor,
                      device: torch.device, num_steps: Sequence[int],
                      repeats: int, log=print) -> dict:
    """Section e: operator classes of the student network, DiffKD and
    FM-KT (convnext, the smallest N of ``num_steps``) forward+backward, on
    the student's FPN shapes (see the module docstring)."""
    shapes, s_feats, t_feats = random_fpn_features(student, inputs, device,
                                                   seed=2)
    channels = shapes[0][1]
    n = min(num_steps)
    log(f'[e] operator breakdown: student, DiffKD, FM-KT (N={n}) under '
        f'torch.profiler ({repeats} runs each)')
    base = _row('RetinaNet R50 student network',
                op_breakdown(student_fwd_bwd(student, inputs), device,
                             repeats),
                count_flops(student, (inputs, )))
    rows: List[dict] = []
    for name, cfg in (('DiffKD', diffkd_connector_cfg(channels)),
                      (f'FM-KT (N={n}, convnext)',
                       fmkt_connector_cfg(channels, n))):
        conn = build_connector(cfg, device)
        seconds = op_breakdown(connector_fwd_bwd(conn, s_feats, t_feats),
                               device, repeats)
        flops = count_flops(ConnectorCall(conn, len(shapes)),
                            s_feats + t_feats)
        rows.append(_row(name, seconds, flops, base))
    base['s_per_gflop_rel_student'] = 1.0
    base['gemm_s_per_gflop_rel_student'] = \
        base['gemm_s_per_gflop'] / base['s_per_gflop']
    return dict(student=base, connectors=rows)
