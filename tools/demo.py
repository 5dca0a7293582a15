"""`make demo`: teacher -> student distillation on the embedded DigitsDet data.

Trains the teacher once (cached under the work dir, reused while its config
is unchanged), then trains the student alone and with each distillation
method under the same schedule and seeds, and prints a table of the
student's and teacher's mAP. Everything runs on this machine's CPU with the
embedded digits data: no download.

    python tools/demo.py [--seeds 3] [--methods student pkd]
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

TEACHER = ('teacher', 'retinanet_r18_digits_teacher.py')
METHODS = {
    'student': ('student alone', 'retinanet_r18c16_digits_student.py'),
    'pkd': ('+ PKD on FPN (feature KD)', 'pkd_retinanet_r18_r18c16_digits.py'),
}
METRIC = 'coco/bbox_mAP'


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs',
                                                       'demo'))
    parser.add_argument('--seeds', type=int, default=1,
                        help='number of seeds per method (mean and spread)')
    parser.add_argument('--methods', nargs='+', default=list(METHODS),
                        choices=list(METHODS))
    parser.add_argument('--retrain-teacher', action='store_true')
    return parser.parse_args()


def _fingerprint(config: str) -> str:
    """Hash of the teacher's resolved config, to know when the cache is stale."""
    from mmengine.config import Config
    text = Config.fromfile(config).pretty_text
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _last_metrics(work_dir: str) -> dict:
    """The last validation metrics and the mean train iteration time of a run,
    read from MMEngine's scalars.json."""
    runs = sorted(d for d in os.listdir(work_dir)
                  if osp.isfile(osp.join(work_dir, d, 'vis_data',
                                         'scalars.json')))
    if not runs:
        raise RuntimeError(f'no scalars.json under {work_dir}')
    metrics, times = {}, []
    with open(osp.join(work_dir, runs[-1], 'vis_data', 'scalars.json')) as f:
        for line in f:
            record = json.loads(line)
            if METRIC in record:
                metrics = record
            elif 'time' in record and 'loss' in record:
                times.append(record['time'])
    # skip the first logged window (warm-up, data loader start)
    steady = times[1:] or times
    metrics['iter_time'] = statistics.median(steady) if steady else float('nan')
    return metrics


def _train(config: str, work_dir: str, seed: int, label: str,
           options: list) -> dict:
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config,
           '--work-dir', work_dir, '--cfg-options', f'randomness.seed={seed}',
           *options]
    start = time.time()
    print(f'  [{label}] training ... (log: {work_dir})', flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED='1'))
    tail = []
    for line in proc.stdout:
        tail = (tail + [line])[-40:]
        if 'Epoch(train)' in line and '/' in line:
            progress = line.split('Epoch(train)')[1].split()[0]
            loss = line.split('loss:')[1].split()[0] if 'loss:' in line \
                else '?'
            print(f'\r  [{label}] epoch {progress}  loss {loss}  '
                  f'{time.time() - start:.0f}s', end='', flush=True)
    proc.wait()
    print(flush=True)
    if proc.returncode != 0:
        sys.stdout.write(''.join(tail))
        raise SystemExit(f'{label} failed (exit {proc.returncode})')
    return _last_metrics(work_dir)


def main():
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    t0 = time.time()

    # 1. the teacher, cached
    teacher_cfg = osp.join(DEMO, TEACHER[1])
    teacher_dir = osp.join(args.work_dir, 'teacher')
    stamp_path = osp.join(teacher_dir, 'mmkdflow_demo_teacher.json')
    fingerprint = _fingerprint(teacher_cfg)
    stamp = json.load(open(stamp_path)) if osp.isfile(stamp_path) else {}
    if (not args.retrain_teacher and stamp.get('fingerprint') == fingerprint
            and osp.isfile(stamp.get('checkpoint', ''))):
        print(f'teacher: reusing {stamp["checkpoint"]}')
        teacher = stamp['metrics']
    else:
        print('teacher: training (first run only; cached afterwards)')
        teacher = _train(teacher_cfg, teacher_dir, 0, 'teacher', [])
        with open(osp.join(teacher_dir, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
        stamp = dict(fingerprint=fingerprint, checkpoint=checkpoint,
                     metrics=teacher)
        with open(stamp_path, 'w') as f:
            json.dump(stamp, f, indent=1)

    # 2. the student alone and with each method, same schedule and seeds
    results = {}
    for method in args.methods:
        label, config = METHODS[method]
        runs = []
        for seed in range(args.seeds):
            work_dir = osp.join(args.work_dir, method, f'seed{seed}')
            options = [f'model.teacher_ckpt={stamp["checkpoint"]}'] \
                if method != 'student' else []
            runs.append(_train(osp.join(DEMO, config), work_dir, seed,
                               f'{method} seed {seed}', options))
        results[method] = runs

    # 3. the table
    table = _table(teacher, results, args.seeds)
    print('\n' + table)
    out = osp.join(args.work_dir, 'results.md')
    with open(out, 'w') as f:
        f.write(table + '\n')
    print(f'\ntable written to {out}  (total {time.time() - t0:.0f}s)')


def _table(teacher: dict, results: dict, seeds: int) -> str:
    t_map = 100 * teacher[METRIC]
    base = results.get('student')
    base_map = 100 * statistics.mean(r[METRIC] for r in base) if base \
        else None
    base_time = statistics.mean(r['iter_time'] for r in base) if base \
        else None
    lines = [
        f'DigitsDet, RetinaNet R18-c16 student <- R18 teacher '
        f'({seeds} seed{"s" if seeds > 1 else ""})', '',
        '| model | mAP | gap closed | time/iter vs student |',
        '|---|---|---|---|',
        f'| teacher | {t_map:.1f} | | |',
    ]
    for method, runs in results.items():
        maps = [100 * r[METRIC] for r in runs]
        mean = statistics.mean(maps)
        spread = f' ± {statistics.stdev(maps):.1f}' if len(maps) > 1 else ''
        gap = '' if base_map is None or method == 'student' else \
            f'{100 * (mean - base_map) / (t_map - base_map):.0f}%' \
            if t_map != base_map else 'n/a'
        rel = '' if base_time is None else \
            f'{statistics.mean(r["iter_time"] for r in runs) / base_time:.2f}x'
        lines.append(f'| {METHODS[method][0]} | {mean:.1f}{spread} | {gap} '
                     f'| {rel} |')
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
