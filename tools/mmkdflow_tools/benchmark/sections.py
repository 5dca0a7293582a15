"""Sections b and c of ``tools/benchmark.py``.

* :func:`step_section`: a whole distillation training step against a
  student-only training step, split into student, teacher forward,
  connector and what remains (recording, bookkeeping).
* :func:`export_section`: inference of the exported students against the
  vanilla student.

(Section a, the connectors, is :mod:`.connector_section`.) Each returns
plain dicts (JSON-ready); FLOPs sit next to every time so the report can
read seconds per GFLOP.
"""
import gc
from typing import Callable

import torch
import torch.nn as nn
from torch import Tensor

from .builders import (build_connector, build_distiller, distiller_cfg,
                       export_model, fpn_shapes, method_points)
from .fwd_bwd import (GIGA, ConnectorCall, ExtractFeat, connector_fwd_bwd,
                      timing_row)
from .measure import count_flops, count_params, time_side_by_side


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

    teacher_flops = count_flops(ExtractFeat(teacher), (inputs, ))
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
        conn_flops = count_flops(ConnectorCall(connector, len(s_feats)),
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
        row = timing_row(name, timings[name],
                         count_flops(model, (inputs, )), count_params(model))
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
