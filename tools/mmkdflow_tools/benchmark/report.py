"""Goals and the printed tables of the benchmark."""
from typing import Dict, List, Optional

#: connector s/GFLOP at most this multiple of the student's (fwd+bwd)
CONNECTOR_EFFICIENCY_GOAL = 1.1
#: distillation-step overhead beyond teacher forward and connectors
STEP_OVERHEAD_GOAL = 0.05
#: checkpointed FM-KT peak memory at the largest N, in plain N=1's
CHECKPOINT_MEMORY_GOAL = 1.5
#: exported students that must cost exactly the vanilla student
ZERO_COST_EXPORTS = ('DiffKD export', 'FM-KT-Theta (N=4) export')


def evaluate_goals(result: Dict) -> List[Dict]:
    """The issue's goals, each with its measured value and whether it is
    met (only for the sections present in ``result``)."""
    goals = []
    section = result.get('connectors')
    if section:
        for row in section['connectors']:
            value = row.get('s_per_gflop_rel_student')
            goals.append(dict(
                goal=f'{row["name"]}: s/GFLOP <= '
                     f'{CONNECTOR_EFFICIENCY_GOAL}x student (fwd+bwd)',
                value=value, threshold=CONNECTOR_EFFICIENCY_GOAL,
                met=value is not None and
                value <= CONNECTOR_EFFICIENCY_GOAL))
    section = result.get('connectors')
    scaling = (section or {}).get('flow_scaling') or {}
    ckpt = scaling.get('variants', {}).get('checkpointed')
    if ckpt and any(p.get('mem_rel_plain_n_min') for p in ckpt):
        top = max(ckpt, key=lambda p: p['n'])
        value = top.get('mem_rel_plain_n_min')
        goals.append(dict(
            goal=f'FM-KT checkpointed: peak memory at N={top["n"]} <= '
                 f'{CHECKPOINT_MEMORY_GOAL}x plain N={scaling["base_n"]}',
            value=value, threshold=CHECKPOINT_MEMORY_GOAL,
            met=value is not None and value <= CHECKPOINT_MEMORY_GOAL))
    section = result.get('distill_step')
    steps = [(section, '', False)]
    before = result.get('distill_step_default_malloc')
    if section and before:  # the "before" rows are information, not goals
        steps.append((before, ' with glibc default malloc (before)', True))
    for measured, label, informative in steps:
        for name, method in (measured or {}).get('methods', {}).items():
            value = method['overhead_rel_student_step']
            goals.append(dict(
                goal=f'{name} step{label}: overhead beyond teacher forward '
                     f'and connector <= {STEP_OVERHEAD_GOAL:.0%} of the '
                     f'student step',
                value=value, threshold=STEP_OVERHEAD_GOAL,
                met=value <= STEP_OVERHEAD_GOAL,
                **(dict(informative=True) if informative else {})))
    section = result.get('export')
    if section:
        for row in section['models']:
            if row['name'] in ZERO_COST_EXPORTS:
                goals.append(dict(
                    goal=f'{row["name"]}: exactly the vanilla student '
                         f'(parameters, FLOPs, weights)',
                    value=row['time_rel_student'], threshold=None,
                    met=row['same_as_vanilla']))
    return goals


def _fmt(value: Optional[float], spec: str) -> str:
    return '-' if value is None else format(value, spec)


def _table(header: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in [header] + rows)
              for i in range(len(header))]
    line = '  '.join('-' * w for w in widths)

    def fmt(r: List[str]) -> str:
        return '  '.join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths)))

    return '\n'.join([fmt(header), line] + [fmt(r) for r in rows])


def format_report(result: Dict) -> str:
    """The human-readable tables of a benchmark result."""
    meta = result['meta']
    out = [f"device {meta['device']} ({meta['threads']} threads), input "
           f"{meta['batch']}x3x{meta['input_size'][0]}x"
           f"{meta['input_size'][1]} (padded to {meta['padded_size'][0]}x"
           f"{meta['padded_size'][1]}), median of {meta['repeats']} runs "
           f"after {meta['warmup']} warm-up",
           f"FLOPs: {meta['flop_method']}",
           f"memory: {meta['memory_method']}"]
    section = result.get('connectors')
    if section:
        rows = []
        for r in [section['student']] + section['connectors']:
            rows.append([r['name'], f"{r['params'] / 1e6:.3f}",
                         f"{r['gflops']:.2f}", f"{r['time_s']:.3f}",
                         f"{r['time_rel_student']:.3f}",
                         _fmt(r.get('peak_mem_mb'), '.0f'),
                         _fmt(r['s_per_gflop'], '.4f'),
                         _fmt(r.get('s_per_gflop_rel_student'), '.2f'),
                         _fmt(r.get('compile_s'), '.1f')])
        out += ['', '[a] connector forward+backward vs the student network '
                f"(FPN {section['fpn_shapes']})",
                _table(['piece', 'params M', 'GFLOPs', 'fwd+bwd s',
                        'x student', 'peak MB', 's/GFLOP', 'x student',
                        'compile s'], rows)]
        ref = section.get('pointwise_reference')
        if ref and ref.get('s_per_gflop_rel_student'):
            out.append(
                f"    pointwise ceiling on this device: plain 1x1 convs "
                f"C-4C-C run at {ref['s_per_gflop_rel_student']:.2f}x the "
                f"student's s/GFLOP ({ref['time_s']:.3f} s for "
                f"{ref['gflops']:.2f} GFLOPs)")
        scaling = section.get('flow_scaling')
        if scaling:
            rows = []
            for variant, points in scaling['variants'].items():
                for p in points:
                    rows.append([
                        variant, str(p['n']), f"{p['time_s']:.3f}",
                        _fmt(p.get('time_rel_plain_same_n'), '.2f'),
                        _fmt(p.get('time_rel_plain_n_min'), '.2f'),
                        _fmt(p.get('peak_mem_mb'), '.0f'),
                        _fmt(p.get('mem_rel_plain_same_n'), '.2f'),
                        _fmt(p.get('mem_rel_plain_n_min'), '.2f')])
            base = scaling['base_n']
            out += ['', '    FM-KT (convnext) against N, per variant',
                    _table(['variant', 'N', 'fwd+bwd s', 'x plain same N',
                            f'x plain N={base}', 'peak MB',
                            'x plain same N', f'x plain N={base}'], rows)]
    steps = [('distill_step_default_malloc', ', glibc default malloc'),
             ('distill_step', '')]
    if not result.get('distill_step_default_malloc'):
        steps = steps[1:]
    elif result['meta'].get('allocator', {}).get('applied'):
        steps[1] = ('distill_step', ', mmkdflow malloc settings')
    rows = []
    for key, label in steps:
        section = result.get(key)
        if not section:
            continue
        for name, m in section['methods'].items():
            t, g = m['times_s'], m['gflops']
            rows.append([name + label, f"{t['student_step']:.3f}",
                         f"{t['teacher_forward']:.3f}",
                         f"{t['connector']:.3f}", f"{t['distill_step']:.3f}",
                         f"{m['ratio_to_student_step']:.2f}",
                         f"{m['overhead_s']:+.3f}",
                         f"{m['overhead_rel_student_step']:+.1%}",
                         f"{g['distill']:.1f}"])
    if rows:
        out += ['', '[b] training step: distillation vs student alone '
                '(RetinaNet R50 <- X101, seconds)',
                _table(['method', 'student', 'teacher fwd', 'connector',
                        'distill', 'x student', 'overhead', 'of student',
                        'GFLOPs'], rows)]
    section = result.get('export')
    if section:
        rows = [[r['name'], r['kind'], f"{r['params'] / 1e6:.3f}",
                 f"{r['gflops']:.2f}", f"{r['time_s']:.3f}",
                 f"{r['time_rel_student']:.3f}",
                 'yes' if r['same_as_vanilla'] else 'no']
                for r in section['models']]
        out += ['', f"[c] exported students, inference ({section['mode']})",
                _table(['model', 'kind', 'params M', 'GFLOPs', 'latency s',
                        'x vanilla', 'identical'], rows)]
    section = result.get('breakdown')
    if section:
        rows = []
        for r in [section['student']] + section['connectors']:
            rows.append([r['name'], f"{r['total_s']:.3f}"] + [
                f"{r['shares'][k]:.0%}"
                for k in ('gemm', 'norm', 'activation', 'other')] + [
                f"{r['s_per_gflop_rel_student']:.2f}",
                f"{r['gemm_s_per_gflop_rel_student']:.2f}"])
        out += ['', '[e] where the time goes (fwd+bwd under torch.profiler, '
                'own time per operator class; s/GFLOP relative to the '
                "student network's whole s/GFLOP)",
                _table(['piece', 'profiled s', 'GEMM+conv', 'norm',
                        'activation', 'other', 's/GFLOP x', 'GEMMs only x'],
                       rows)]
    if result.get('checkpoint'):
        from .checkpoint_section import format_checkpoint_section
        out += format_checkpoint_section(result['checkpoint'])
    goals = result.get('goals') or []
    if goals:
        out += ['', '[d] goals']
        for g in goals:
            value = '' if g['value'] is None else f" ({g['value']:.3f})"
            status = 'MET   ' if g['met'] else 'MISSED'
            if g.get('informative'):  # a "before" row, not a goal
                status = 'before ' + status.strip().lower() + ':'
            out.append(f"  {status} {g['goal']}{value}")
    return '\n'.join(out)
