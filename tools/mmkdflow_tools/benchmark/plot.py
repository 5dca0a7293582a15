"""The plot of ``tools/benchmark.py``: FM-KT time and peak memory
against the number of Euler steps N, per variant."""
from typing import Dict


def plot_scaling(result: Dict, path: str) -> bool:
    """Write a two-panel figure (fwd+bwd seconds and peak MB against N,
    one line per variant: plain, checkpointed, compiled) of section a's
    ``flow_scaling``, with DiffKD and the student as horizontal references.

    Returns:
        ``False`` (nothing written) without matplotlib or without FM-KT
        rows; ``True`` otherwise.
    """
    section = result.get('connectors') or {}
    scaling = section.get('flow_scaling')
    if not scaling:
        return False
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    styles = {'plain': 'o-', 'checkpointed': 's--', 'compiled': '^:'}
    for variant, points in scaling['variants'].items():
        ns = [p['n'] for p in points]
        ax_t.plot(ns, [p['time_s'] for p in points],
                  styles.get(variant, 'x-'), label=f'FM-KT {variant}')
        mem = [p.get('peak_mem_mb') for p in points]
        if all(m is not None for m in mem):
            ax_m.plot(ns, mem, styles.get(variant, 'x-'),
                      label=f'FM-KT {variant}')
    refs = [('student network', section.get('student'), 'k'),
            ('DiffKD', next((r for r in section.get('connectors', [])
                             if r['name'] == 'DiffKD'), None), 'tab:gray')]
    for label, row, color in refs:
        if row is None:
            continue
        ax_t.axhline(row['time_s'], color=color, lw=0.8, ls='-.',
                     label=label)
        if row.get('peak_mem_mb'):
            ax_m.axhline(row['peak_mem_mb'], color=color, lw=0.8, ls='-.',
                         label=label)
    meta = result.get('meta', {})
    title = (f"{meta.get('device', '')}, {meta.get('threads', '?')} threads, "
             f"batch {meta.get('batch', '?')}x3x"
             f"{'x'.join(str(v) for v in meta.get('input_size', []))}")
    for ax, ylabel in ((ax_t, 'forward+backward s (median)'),
                       (ax_m, 'peak memory MB')):
        ax.set_xlabel('Euler steps N')
        ax.set_ylabel(ylabel)
        ax.set_xscale('log', base=2)
        ns = sorted({p['n'] for points in scaling['variants'].values()
                     for p in points})
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f'FM-KT connector on 5 FPN levels against N ({title})',
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
