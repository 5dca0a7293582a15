"""`make demo`: does distillation make the student better, and at what cost?

On the embedded digits data (no download) the demo trains the teacher once
(cached under the work dir and reused while its config is unchanged), then
the student alone and with each distillation method under the same
schedule, learning rate and seeds, and reports one table (metric, share of
the teacher-student gap closed, time per iteration relative to the student
alone) as Markdown plus a PNG bar chart under ``work_dirs/demo/<task>/``.

    python tools/demo.py                      # DigitsDet, one seed
    python tools/demo.py --seeds 3            # mean and spread over 3 seeds
    python tools/demo.py --task cls seg       # also DigitsCls / DigitsSeg
"""
import argparse
import hashlib
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(ROOT, 'configs', 'demo')

# task -> (title, metric key, metric name, teacher config, methods)
TASKS = {
    'det': dict(
        title='DigitsDet, RetinaNet R18-c16 student <- RetinaNet R18 teacher',
        metric='coco/bbox_mAP', metric_name='mAP',
        teacher='retinanet_r18_digits_teacher.py',
        methods={
            'student': ('student alone', 'retinanet_r18c16_digits_student.py'),
            'pkd': ('+ PKD on FPN (feature KD)',
                    'pkd_retinanet_r18_r18c16_digits.py'),
            'diffkd': ('+ DiffKD', 'diffkd_retinanet_r18_r18c16_digits.py'),
            'fmkt': ('+ FM-KT', 'fmkt_retinanet_r18_r18c16_digits.py'),
            'fmkt_theta': ('+ FM-KT-Theta',
                           'fmkt_theta_retinanet_r18_r18c16_digits.py'),
        }),
    'seg': dict(
        title='DigitsSeg, DeepLabV3 R18-c16 student <- DeepLabV3 R18 teacher',
        metric='mIoU', metric_name='mIoU',
        teacher='deeplabv3_r18_digits_teacher.py',
        methods={
            'student': ('student alone', 'deeplabv3_r18c16_digits_student.py'),
            'cwd': ('+ CWD on logits', 'cwd_deeplabv3_r18_r18c16_digits.py'),
        }),
    'cls': dict(
        title='DigitsCls, ResNet-18-c8 student <- ResNet-18 teacher',
        metric='accuracy/top1', metric_name='top-1',
        teacher='resnet18_cifar_digits_teacher.py',
        methods={
            'student': ('student alone', 'resnet18c8_cifar_digits_student.py'),
            'kd': ('+ KD on logits', 'kd_resnet18_r18c8_digits.py'),
            'fmkt': ('+ FM-KT logit flow', 'fmkt_resnet18_r18c8_digits.py'),
            'ofmkt': ('OFM-KT (online, no teacher)',
                      'ofmkt_resnet18c8_digits.py'),
        }),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs',
                                                       'demo'))
    parser.add_argument('--task', nargs='+', default=['det'],
                        choices=list(TASKS))
    parser.add_argument('--seeds', type=int, default=1,
                        help='number of seeds per method (mean and spread)')
    parser.add_argument('--methods', nargs='+', default=None,
                        help='subset of the task\'s methods (default: all)')
    parser.add_argument('--retrain-teacher', action='store_true')
    return parser.parse_args()


def _fingerprint(config: str) -> str:
    """Hash of the teacher's resolved config, to know when the cache is
    stale."""
    from mmengine.config import Config
    text = Config.fromfile(config).pretty_text
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _last_metrics(work_dir: str, metric: str) -> dict:
    """The last validation metrics and the median train iteration time of a
    run, read from MMEngine's ``vis_data/scalars.json``."""
    runs = sorted(d for d in os.listdir(work_dir)
                  if osp.isfile(osp.join(work_dir, d, 'vis_data',
                                         'scalars.json')))
    if not runs:
        raise RuntimeError(f'no scalars.json under {work_dir}')
    metrics, times = {}, []
    with open(osp.join(work_dir, runs[-1], 'vis_data', 'scalars.json')) as f:
        for line in f:
            record = json.loads(line)
            if metric in record:
                metrics = record
            elif 'time' in record and 'loss' in record:
                times.append(record['time'])
    if metric not in metrics:
        raise RuntimeError(f'{work_dir}: no {metric} in scalars.json')
    steady = times[1:] or times  # the first window holds the warm-up
    metrics['iter_time'] = statistics.median(steady) if steady else float(
        'nan')
    return metrics


def _progress(line: str):
    for marker in ('Epoch(train)', 'Iter(train)'):
        if marker in line:
            # '[2][ 10/200]': mmengine pads the iteration to a fixed width
            where = ''.join(line.split(marker)[1].split('lr:')[0].split())
            loss = line.split('loss:')[1].split()[0] if 'loss:' in line \
                else '?'
            return f'{marker[:-7].lower()} {where}  loss {loss}'
    return None


def _train(config: str, work_dir: str, seed: int, label: str, metric: str,
           options: list) -> dict:
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config,
           '--work-dir', work_dir, '--cfg-options', f'randomness.seed={seed}',
           *options]
    start = time.time()
    print(f'  [{label}] training (log: {work_dir})', flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED='1'))
    tail = []
    for line in proc.stdout:
        tail = (tail + [line])[-40:]
        progress = _progress(line)
        if progress:
            print(f'\r  [{label}] {progress}  {time.time() - start:.0f}s   ',
                  end='', flush=True)
    proc.wait()
    if proc.returncode != 0:
        sys.stdout.write(''.join(tail))
        raise SystemExit(f'{label} failed (exit {proc.returncode})')
    metrics = _last_metrics(work_dir, metric)
    print(f'\r  [{label}] done in {time.time() - start:.0f}s: {metric} '
          f'{metrics[metric]:.3f}' + ' ' * 30, flush=True)
    return metrics


def _teacher(task: dict, work_dir: str, retrain: bool):
    """Train the task's teacher, or reuse the cached one."""
    config = osp.join(DEMO, task['teacher'])
    teacher_dir = osp.join(work_dir, 'teacher')
    stamp_path = osp.join(teacher_dir, 'mmkdflow_demo_teacher.json')
    fingerprint = _fingerprint(config)
    stamp = json.load(open(stamp_path)) if osp.isfile(stamp_path) else {}
    if (not retrain and stamp.get('fingerprint') == fingerprint
            and osp.isfile(stamp.get('checkpoint', ''))):
        print(f'teacher: reusing {stamp["checkpoint"]}')
        return stamp
    print('teacher: training (first run only; cached afterwards)')
    metrics = _train(config, teacher_dir, 0, 'teacher', task['metric'], [])
    with open(osp.join(teacher_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    stamp = dict(fingerprint=fingerprint, checkpoint=checkpoint,
                 metrics=metrics)
    with open(stamp_path, 'w') as f:
        json.dump(stamp, f, indent=1)
    return stamp


def run_task(name: str, args) -> None:
    task = TASKS[name]
    work_dir = osp.join(args.work_dir, name)
    os.makedirs(work_dir, exist_ok=True)
    methods = args.methods or list(task['methods'])
    unknown = sorted(set(methods) - set(task['methods']))
    if unknown:
        raise SystemExit(f'--methods {unknown} not available for {name}; '
                         f'choose from {list(task["methods"])}')
    print(f'== {task["title"]}')
    stamp = _teacher(task, work_dir, args.retrain_teacher)
    results = {}
    for method in methods:
        config = osp.join(DEMO, task['methods'][method][1])
        runs = []
        for seed in range(args.seeds):
            options = [f'model.teacher_ckpt={stamp["checkpoint"]}'] \
                if method not in ('student', 'ofmkt') else []
            runs.append(_train(config, osp.join(work_dir, method,
                                                f'seed{seed}'),
                               seed, f'{method} seed {seed}', task['metric'],
                               options))
        results[method] = runs
    rows = summarise(task, stamp['metrics'], results)
    table = markdown_table(task['title'], task['metric_name'], rows,
                           args.seeds)
    md, png = osp.join(work_dir, 'results.md'), osp.join(work_dir,
                                                         'results.png')
    with open(md, 'w') as f:
        f.write(table + '\n')
    bar_chart(task['title'], task['metric_name'], rows, png)
    print('\n' + table + f'\n\ntable: {md}\nchart: {png}\n')


def summarise(task: dict, teacher: dict, results: dict) -> list:
    """One row per model: label, mean, spread, gap closed, relative time."""
    key = task['metric']
    t_val = 100 * teacher[key]
    base = results.get('student')
    base_val = statistics.mean(100 * r[key] for r in base) if base else None
    base_time = statistics.mean(r['iter_time'] for r in base) if base \
        else None
    rows = [dict(label='teacher', mean=t_val, spread=0.0, gap=None,
                 rel_time=None)]
    for method, runs in results.items():
        values = [100 * r[key] for r in runs]
        mean = statistics.mean(values)
        gap = None
        if base_val is not None and method != 'student' and t_val != base_val:
            gap = 100 * (mean - base_val) / (t_val - base_val)
        rows.append(dict(
            label=task['methods'][method][0], mean=mean,
            spread=statistics.stdev(values) if len(values) > 1 else 0.0,
            gap=gap, rel_time=None if base_time is None else
            statistics.mean(r['iter_time'] for r in runs) / base_time))
    return rows


def markdown_table(title: str, metric_name: str, rows: list,
                   seeds: int) -> str:
    lines = [f'{title} ({seeds} seed{"s" if seeds > 1 else ""})', '',
             f'| model | {metric_name} | gap closed | time/iter vs student |',
             '|---|---|---|---|']
    for row in rows:
        spread = f' ± {row["spread"]:.1f}' if row['spread'] else ''
        gap = '' if row['gap'] is None else f'{row["gap"]:.0f}%'
        rel = '' if row['rel_time'] is None else f'{row["rel_time"]:.2f}x'
        lines.append(f'| {row["label"]} | {row["mean"]:.1f}{spread} | {gap} '
                     f'| {rel} |')
    return '\n'.join(lines)


def bar_chart(title: str, metric_name: str, rows: list, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 2, 4))
    labels = [r['label'].replace('+ ', '') for r in rows]
    colors = ['#888888'] + ['#4c72b0'] + ['#dd8452'] * (len(rows) - 2)
    ax.bar(labels, [r['mean'] for r in rows],
           yerr=[r['spread'] for r in rows], color=colors[:len(rows)],
           capsize=4)
    for i, r in enumerate(rows):
        ax.text(i, r['mean'], f'{r["mean"]:.1f}', ha='center', va='bottom')
    low = min(r['mean'] for r in rows)
    ax.set_ylim(max(0, low - 10), max(r['mean'] for r in rows) + 5)
    ax.set_ylabel(metric_name)
    ax.set_title(title, fontsize=9)
    plt.setp(ax.get_xticklabels(), rotation=20, ha='right')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    args = parse_args()
    start = time.time()
    for name in args.task:
        run_task(name, args)
    print(f'total {time.time() - start:.0f}s')


if __name__ == '__main__':
    main()
