"""The three measured sections of ``tools/benchmark.py``.

* :func:`connector_section`: connector forward+backward against the
  student network's own forward+backward, on the student's FPN shapes.
* :func:`step_section`: a whole distillation training step against a
  student-only training step, split into student, teacher forward,
  connector and what remains (recording, bookkeeping).
* :func:`export_section`: inference of the exported students against the
  vanilla student.

Each returns plain dicts (JSON-ready); FLOPs sit next to every time so the
report can read seconds per GFLOP.
"""
import gc
from typing import Callable, List, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from mmkdflow.models.utils.context import DistillContext
from .builders import (build_connector, build_distiller,
                       diffkd_connector_cfg, distiller_cfg, export_model,
                       fmkt_connector_cfg, fpn_shapes, method_points)
from .measure import (count_flops, count_params, peak_memory,
                      time_side_by_side, zero_grad)

GIGA = 1e9


class _ConnectorCall(nn.Module):
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


class _ExtractFeat(nn.Module):
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


def _flat(outputs) -> List[Tensor]:
    if isinstance(outputs, Tensor):
        return [outputs]
    return [t for item in outputs for t in _flat(item)]


def student_fwd_bwd(student: nn.Module, inputs: Tensor) -> Callable[[], None]:
    """One forward (``mode='tensor'``: backbone, neck, head) and backward of
    the student network, without the loss computation."""

    def run() -> None:
        student.train()
        outs = _flat(student(inputs, mode='tensor'))
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


def _row(name: str, timing: dict, flops: int, params: int,
         memory: int = None) -> dict:
    gflops = flops / GIGA
    row = dict(name=name, params=params, gflops=gflops,
               time_s=timing['median_s'], times_s=timing['times_s'])
    row['s_per_gflop'] = row['time_s'] / gflops if gflops > 0 else None
    if memory is not None:
        row['peak_mem_mb'] = memory / 2**20
    return row


def _relative(rows: List[dict], base: dict) -> None:
    for row in rows:
        row['time_rel_student'] = row['time_s'] / base['time_s']
        if row.get('s_per_gflop') and base.get('s_per_gflop'):
            row['s_per_gflop_rel_student'] = \
                row['s_per_gflop'] / base['s_per_gflop']


def connector_section(student: nn.Module, inputs: Tensor,
                      device: torch.device, num_steps: Sequence[int],
                      warmup: int, repeats: int, log=print,
                      diffkd_channels_last: bool = False) -> dict:
    """Section a: connectors against the student's own forward+backward
    (``diffkd_channels_last`` adds a DiffKD row with
    ``channels_last=True``)."""
    shapes = fpn_shapes(student, inputs)
    channels = shapes[0][1]
    gen = torch.Generator().manual_seed(1)
    s_feats = [torch.randn(s, generator=gen).to(device).requires_grad_()
               for s in shapes]
    t_feats = [torch.randn(s, generator=gen).to(device) for s in shapes]
    configs = {'DiffKD': diffkd_connector_cfg(channels)}
    if diffkd_channels_last:
        configs['DiffKD (channels-last)'] = dict(
            diffkd_connector_cfg(channels), channels_last=True)
    for n in num_steps:
        configs[f'FM-KT (N={n}, convnext)'] = fmkt_connector_cfg(channels, n)
    connectors = {name: build_connector(cfg, device)
                  for name, cfg in configs.items()}
    reference = PointwiseReference(channels).to(device)
    fns = {'student': student_fwd_bwd(student, inputs),
           'reference': pointwise_fwd_bwd(reference, s_feats)}
    fns.update({name: connector_fwd_bwd(conn, s_feats, t_feats)
                for name, conn in connectors.items()})
    log(f'[a] timing student and {len(connectors)} connectors '
        f'({warmup} warm-up, {repeats} timed runs each)')
    timings = time_side_by_side(fns, device, warmup, repeats)
    log('[a] peak memory and FLOPs')
    base = _row('RetinaNet R50 student network',
                timings['student'], count_flops(student, (inputs, )),
                count_params(student), peak_memory(fns['student'], device)[0])
    rows = []
    for name, conn in connectors.items():
        flops = count_flops(_ConnectorCall(conn, len(shapes)),
                            s_feats + t_feats)
        rows.append(_row(name, timings[name], flops,
                         count_params(conn, trainable_only=True),
                         peak_memory(fns[name], device)[0]))
    ceiling = _row('reference: 1x1 convs C-4C-C (GEMM only)',
                   timings['reference'], count_flops(reference, s_feats),
                   count_params(reference))
    _relative([base, ceiling] + rows, base)
    return dict(fpn_shapes=[list(s) for s in shapes], student=base,
                connectors=rows, pointwise_reference=ceiling)


def step_section(student: nn.Module, teacher: nn.Module, inputs: Tensor,
                 samples: list, device: torch.device, student_cfg: str,
                 teacher_cfg: str, warmup: int, repeats: int,
                 log=print) -> dict:
    """Section b: distillation training steps against a student-only one.

    ``overhead = distill_step - student_step - teacher_forward -
    connector_fwd_bwd`` is what the distiller adds beyond the teacher's
    forward and the connector's own work (hooks, recording, loss
    bookkeeping, the non-finite guard); its goal is <= 5% of the student
    step.
    """
    channels = fpn_shapes(student, inputs)[0][1]
    points = method_points(channels)
    student_opt = torch.optim.SGD(student.parameters(), lr=0.0,
                                  momentum=0.9, weight_decay=1e-4)

    def student_step() -> None:
        student.train()
        total, _ = student.parse_losses(student.loss(inputs, samples))
        total.backward()
        student_opt.step()
        student_opt.zero_grad(set_to_none=True)

    def teacher_forward() -> None:
        teacher.eval()
        with torch.no_grad():
            teacher.extract_feat(inputs)

    teacher_flops = count_flops(_ExtractFeat(teacher), (inputs, ))
    student_flops = count_flops(student, (inputs, ))
    with torch.no_grad():
        t_feats = [f.detach() for f in teacher.extract_feat(inputs)]
        s_feats = [f.detach().requires_grad_()
                   for f in student.extract_feat(inputs)]
    methods = {}
    for name in ('DiffKD', 'FM-KT (N=4)'):
        conn_cfg, replace = points[name]
        distiller = build_distiller(distiller_cfg(
            student_cfg, teacher_cfg, conn_cfg, replace), device)
        distiller.student.load_state_dict(student.state_dict())
        distiller.teacher.load_state_dict(teacher.state_dict())
        connector = distiller.connectors['fpn']
        opt = torch.optim.SGD(
            [p for p in distiller.parameters() if p.requires_grad], lr=0.0,
            momentum=0.9, weight_decay=1e-4)

        def distill_step(distiller=distiller, opt=opt) -> None:
            distiller.train()
            total, _ = distiller.parse_losses(
                distiller.loss(inputs, samples))
            total.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        fns = dict(student_step=student_step, teacher_forward=teacher_forward,
                   connector=connector_fwd_bwd(connector, s_feats, t_feats),
                   distill_step=distill_step)
        log(f'[b] {name}: timing student step, teacher forward, connector '
            f'and distillation step')
        runs = time_side_by_side(fns, device, warmup, repeats)
        t = {k: v['median_s'] for k, v in runs.items()}
        conn_flops = count_flops(_ConnectorCall(connector, len(s_feats)),
                                 s_feats + t_feats)
        overhead = t['distill_step'] - t['student_step'] - \
            t['teacher_forward'] - t['connector']
        methods[name] = dict(
            times_s=t,
            runs_s={k: v['times_s'] for k, v in runs.items()},
            ratio_to_student_step=t['distill_step'] / t['student_step'],
            overhead_s=overhead,
            overhead_rel_student_step=overhead / t['student_step'],
            gflops=dict(student=student_flops / GIGA,
                        teacher=teacher_flops / GIGA,
                        connector=conn_flops / GIGA,
                        distill=(student_flops + teacher_flops +
                                 conn_flops) / GIGA))
        del distiller, connector, opt, fns
        gc.collect()
    return dict(teacher_params=count_params(teacher), methods=methods)


def export_section(student: nn.Module, inputs: Tensor, device: torch.device,
                   student_cfg: str, teacher_cfg: str, warmup: int,
                   repeats: int, log=print) -> dict:
    """Section c: inference (``mode='tensor'``: the network without
    post-processing) of exported students against the vanilla student."""
    channels = fpn_shapes(student, inputs)[0][1]
    student = student.eval()
    models = {'vanilla student': (student, 'student')}
    for name, (conn_cfg, replace) in method_points(channels).items():
        connector = build_connector(conn_cfg, device)
        cfg = distiller_cfg(student_cfg, teacher_cfg, conn_cfg, replace)
        models[f'{name} export'] = export_model(cfg, student, connector,
                                                device)

    def infer(model: nn.Module) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                model(inputs, mode='tensor')
        return run

    log(f'[c] timing inference of {len(models)} models')
    timings = time_side_by_side(
        {name: infer(model) for name, (model, _) in models.items()}, device,
        warmup, repeats)
    rows = []
    keys = {}
    for name, (model, kind) in models.items():
        row = _row(name, timings[name], count_flops(model, (inputs, )),
                   count_params(model))
        row['kind'] = kind
        keys[name] = {k: tuple(v.shape)
                      for k, v in model.state_dict().items()}
        rows.append(row)
    base = rows[0]
    for row in rows:
        row['time_rel_student'] = row['time_s'] / base['time_s']
        row['same_as_vanilla'] = bool(
            row['params'] == base['params'] and row['gflops'] ==
            base['gflops'] and keys[row['name']] == keys[base['name']])
    return dict(mode="model(inputs, mode='tensor') under no_grad",
                models=rows)
