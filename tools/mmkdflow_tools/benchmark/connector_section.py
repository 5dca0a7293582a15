"""Section a of ``tools/benchmark.py``: connector forward+backward against
the student network's own forward+backward, on the student's FPN shapes,
with the checkpointed and compiled variants and FM-KT's time and memory
against N."""
import time
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from .builders import (build_connector, diffkd_connector_cfg,
                       fmkt_connector_cfg, random_fpn_features)
from .fwd_bwd import (ConnectorCall, PointwiseReference, connector_fwd_bwd,
                      pointwise_fwd_bwd, student_fwd_bwd, timing_row)
from .measure import count_flops, count_params, peak_memory, time_side_by_side


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
    shapes, s_feats, t_feats = random_fpn_features(student, inputs, device,
                                                   seed=1)
    channels = shapes[0][1]
    variants = connector_variants(channels, num_steps, diffkd_channels_last,
                                  checkpoint, compile)
    connectors = {}
    for name, variant in variants.items():
        conn = build_connector(variant['cfg'], device)
        # per-step checkpointing / torch.compile of the FM-KT velocity
        # fields, torch.compile of DiffKD's denoiser
        conn.set_speed_options(variant['checkpoint'], variant['compile'])
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
    base = timing_row('RetinaNet R50 student network', timings['student'],
                      count_flops(student, (inputs, )),
                      count_params(student),
                      peak_memory(fns['student'], device)[0])
    rows, flops = [], {}
    for name, conn in connectors.items():
        variant = variants[name]
        if variant['twin'] is None:
            flops[name] = count_flops(ConnectorCall(conn, len(shapes)),
                                      s_feats + t_feats)
        row = timing_row(name, timings[name],
                         flops[variant['twin'] or name],
                         count_params(conn, trainable_only=True),
                         peak_memory(fns[name], device)[0])
        row.update({k: variant[k]
                    for k in ('method', 'n', 'checkpoint', 'compile')})
        if name in first_calls:
            row['first_call_s'] = first_calls[name]
            row['compile_s'] = max(0.0, first_calls[name] - row['time_s'])
        rows.append(row)
    ceiling = timing_row('reference: 1x1 convs C-4C-C (GEMM only)',
                         timings['reference'],
                         count_flops(reference, s_feats),
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
