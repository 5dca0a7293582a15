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
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from mmkdflow.models.core import DistillContext
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


def set_connector_options(connector: nn.Module, checkpoint: bool = False,
                          compile: bool = False) -> int:
    """Turn on the speed/memory options of a built connector: per-step
    activation checkpointing and ``torch.compile`` of every FM-KT velocity
    field (:class:`~mmkdflow.models.flows.VelocityField`), ``torch.compile``
    of DiffKD's denoiser. Returns how many modules took an option."""
    from mmkdflow.models.connectors import DiffKDConnector
    from mmkdflow.models.flows import VelocityField
    touched = 0
    for module in connector.modules():
        if isinstance(module, VelocityField):
            module.checkpoint, module.compile = checkpoint, compile
            touched += 1
        elif isinstance(module, DiffKDConnector) and compile:
            module.compile = True
            touched += 1
    return touched


def connector_variants(channels: int, num_steps: Sequence[int],
                       diffkd_channels_last: bool = False,
                       checkpoint: bool = True,
                       compile: bool = True) -> Dict[str, dict]:
    """The connector rows of section a: name -> ``dict(cfg, method, n,
    checkpoint, compile, twin)``, ``twin`` naming the eager row whose
    FLOPs it shares (the FLOP counter traces eager code only)."""
    rows = {'DiffKD': dict(cfg=diffkd_connector_cfg(channels),
                           method='DiffKD', n=None, checkpoint=False,
                           compile=False, twin=None)}
    if diffkd_channels_last:
        rows['DiffKD (channels-last)'] = dict(
            rows['DiffKD'], cfg=dict(diffkd_connector_cfg(channels),
                                     channels_last=True))
    if compile:
        rows['DiffKD (compiled)'] = dict(rows['DiffKD'], compile=True,
                                         twin='DiffKD')
    for n in num_steps:
        base = f'FM-KT (N={n}, convnext)'
        plain = dict(cfg=fmkt_connector_cfg(channels, n), method='FM-KT',
                     n=n, checkpoint=False, compile=False, twin=None)
        rows[base] = plain
        if checkpoint:
            rows[f'FM-KT (N={n}, convnext, checkpointed)'] = dict(
                plain, checkpoint=True, twin=base)
        if compile:
            rows[f'FM-KT (N={n}, convnext, compiled)'] = dict(
                plain, compile=True, twin=base)
    return rows


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
                      diffkd_channels_last: bool = False,
                      checkpoint: bool = True,
                      compile: bool = True) -> dict:
    """Section a: connectors against the student's own forward+backward.

    Rows: DiffKD and FM-KT (convnext) at every N of ``num_steps``, plus
    (``diffkd_channels_last``) DiffKD with ``channels_last=True``,
    (``checkpoint``) FM-KT with per-step activation checkpointing and
    (``compile``) DiffKD and FM-KT under ``torch.compile``. A compiled
    row's first call (compilation included) is timed alone before the
    side-by-side timing; ``compile_s`` is that call minus the row's median
    (the graphs are shared by every N, so the first compiled FM-KT row
    pays for all of them). Each row keeps ``method``, ``n``,
    ``checkpoint`` and ``compile`` for the plot.
    """
    shapes = fpn_shapes(student, inputs)
    channels = shapes[0][1]
    gen = torch.Generator().manual_seed(1)
    s_feats = [torch.randn(s, generator=gen).to(device).requires_grad_()
               for s in shapes]
    t_feats = [torch.randn(s, generator=gen).to(device) for s in shapes]
    variants = connector_variants(channels, num_steps, diffkd_channels_last,
                                  checkpoint, compile)
    connectors = {}
    for name, variant in variants.items():
        conn = build_connector(variant['cfg'], device)
        set_connector_options(conn, variant['checkpoint'],
                              variant['compile'])
        connectors[name] = conn
    reference = PointwiseReference(channels).to(device)
    fns = {'student': student_fwd_bwd(student, inputs),
           'reference': pointwise_fwd_bwd(reference, s_feats)}
    fns.update({name: connector_fwd_bwd(conn, s_feats, t_feats)
                for name, conn in connectors.items()})
    first_calls = {}
    for name, variant in variants.items():
        if variant['compile']:
            log(f'[a] compiling {name}')
            start = time.perf_counter()
            fns[name]()
            first_calls[name] = time.perf_counter() - start
    log(f'[a] timing student and {len(connectors)} connectors '
        f'({warmup} warm-up, {repeats} timed runs each)')
    timings = time_side_by_side(fns, device, warmup, repeats)
    log('[a] peak memory and FLOPs')
    base = _row('RetinaNet R50 student network',
                timings['student'], count_flops(student, (inputs, )),
                count_params(student), peak_memory(fns['student'], device)[0])
    rows, flops = [], {}
    for name, conn in connectors.items():
        variant = variants[name]
        if variant['twin'] is None:
            flops[name] = count_flops(_ConnectorCall(conn, len(shapes)),
                                      s_feats + t_feats)
        row = _row(name, timings[name], flops[variant['twin'] or name],
                   count_params(conn, trainable_only=True),
                   peak_memory(fns[name], device)[0])
        row.update({k: variant[k]
                    for k in ('method', 'n', 'checkpoint', 'compile')})
        if name in first_calls:
            row['first_call_s'] = first_calls[name]
            row['compile_s'] = max(0.0, first_calls[name] - row['time_s'])
        rows.append(row)
    ceiling = _row('reference: 1x1 convs C-4C-C (GEMM only)',
                   timings['reference'], count_flops(reference, s_feats),
                   count_params(reference))
    _relative([base, ceiling] + rows, base)
    return dict(fpn_shapes=[list(s) for s in shapes], student=base,
                connectors=rows, pointwise_reference=ceiling,
                flow_scaling=flow_scaling(rows))


def flow_scaling(rows: List[dict]) -> Optional[dict]:
    """FM-KT time and peak memory against N, per variant (plain,
    checkpointed, compiled), relative to the plain N=1 row when present."""
    fmkt = [r for r in rows if r.get('method') == 'FM-KT']
    if not fmkt:
        return None

    def variant(r: dict) -> str:
        return 'checkpointed' if r['checkpoint'] else \
            'compiled' if r['compile'] else 'plain'

    base = next((r for r in fmkt if variant(r) == 'plain'
                 and r['n'] == min(x['n'] for x in fmkt)), None)
    out: Dict[str, List[dict]] = {}
    for r in fmkt:
        point = dict(n=r['n'], time_s=r['time_s'],
                     peak_mem_mb=r.get('peak_mem_mb'))
        if base is not None:
            point['time_rel_plain_n_min'] = r['time_s'] / base['time_s']
            if r.get('peak_mem_mb') and base.get('peak_mem_mb'):
                point['mem_rel_plain_n_min'] = \
                    r['peak_mem_mb'] / base['peak_mem_mb']
        plain = next((p for p in fmkt if variant(p) == 'plain'
                      and p['n'] == r['n']), None)
        if plain is not None:
            point['time_rel_plain_same_n'] = r['time_s'] / plain['time_s']
            if r.get('peak_mem_mb') and plain.get('peak_mem_mb'):
                point['mem_rel_plain_same_n'] = \
                    r['peak_mem_mb'] / plain['peak_mem_mb']
        out.setdefault(variant(r), []).append(point)
    for points in out.values():
        points.sort(key=lambda p: p['n'])
    return dict(base_n=None if base is None else base['n'], variants=out)


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
