"""FM-KT at inference: the exported plain FM-KT student tested at several
numbers of flow steps N (metric against latency)."""
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Sequence

from .options import load_config
from .training import ROOT


def run_tool(args: List[str], label: str) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, text=True,
                          capture_output=True)
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f'{label} failed (exit {proc.returncode})')
    return proc.stdout + proc.stderr


def test_log_values(text: str, metric: str) -> Dict[str, float]:
    """Metric and mean seconds per test iteration of a ``tools/test.py``
    log: the values of its last ``Epoch(test)`` / ``Iter(test)`` summary
    line (MMEngine prints the metrics with the mean ``time`` of the loop).

    Raises:
        RuntimeError: The log has no line with ``metric``.
    """
    for line in reversed(text.splitlines()):
        if '(test)' in line and f'{metric}:' in line:
            value = float(line.split(f'{metric}:')[1].split()[0])
            seconds = float(line.split(' time:')[1].split()[0]) \
                if ' time:' in line else float('nan')
            return dict(value=value, time=seconds)
    raise RuntimeError(f'no test line with {metric} in the tools/test.py '
                       f'output (mmdet logs no metric when no box passes '
                       f'the score threshold)')


def fmkt_steps(task: dict, config: str, work_dir: str,
               steps: Sequence[int], options: Sequence[str] = ()) -> str:
    """Evaluate the exported plain FM-KT student (seed 0) at N test steps.

    The student of ``<work dir>/<task>/fmkt/seed0`` is exported with
    ``tools/export_student.py`` (the student with its EMA flow) and tested
    with ``tools/test.py`` at batch 1 for every N in ``steps``
    (``num_steps_test``), which writes ``fmkt_steps.md`` (metric and
    milliseconds per image) and ``fmkt_steps.png`` (metric against latency)
    into the task's folder. Returns the table.
    """
    from mmkdflow_tools.reporting import metric_scale
    run = osp.join(work_dir, 'fmkt', 'seed0')
    with open(osp.join(run, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    out_dir = osp.join(work_dir, 'fmkt_steps')
    os.makedirs(out_dir, exist_ok=True)
    exported = osp.join(out_dir, 'fmkt_student.pth')
    run_tool([osp.join(ROOT, 'tools', 'export_student.py'), config,
              checkpoint, exported], 'export of the FM-KT student')
    point = next(iter(load_config(config).model.distill_points))
    rows = []
    for n in steps:
        print(f'  [fmkt steps] N = {n}', flush=True)
        text = run_tool([
            osp.join(ROOT, 'tools', 'test.py'),
            osp.splitext(exported)[0] + '.py', exported, '--work-dir',
            osp.join(out_dir, f'N{n}'), '--cfg-options',
            f'model.distill_points.{point}.connector.num_steps_test={n}',
            'test_dataloader.batch_size=1', *options], f'test at N = {n}')
        found = test_log_values(text, task['metric'])
        rows.append(dict(steps=n, value=found['value'] *
                         metric_scale(task['metric']),
                         ms=1000 * found['time']))
    lines = [f'FM-KT student ({task["title"]}), test steps N', '',
             f'| N | {task["metric_name"]} | ms per image (batch 1) |',
             '|---|---|---|']
    lines += [f'| {r["steps"]} | {r["value"]:.1f} | {r["ms"]:.1f} |'
              for r in rows]
    table = '\n'.join(lines)
    with open(osp.join(work_dir, 'fmkt_steps.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(work_dir, 'fmkt_steps.json'), 'w') as f:
        json.dump(rows, f, indent=1)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r['ms'] for r in rows], [r['value'] for r in rows], 'o-')
    for r in rows:
        ax.annotate(f'N={r["steps"]}', (r['ms'], r['value']),
                    textcoords='offset points', xytext=(4, 4), fontsize=8)
    ax.set_xlabel('ms per image (batch 1, CPU)')
    ax.set_ylabel(task['metric_name'])
    ax.set_title('FM-KT student: test steps vs accuracy', fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(osp.join(work_dir, 'fmkt_steps.png'), dpi=120)
    plt.close(fig)
    print('\n' + table + '\n')
    return table
