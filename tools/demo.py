"""`make demo`: does distillation make the student better, and at what cost?

On the embedded digits data (no download) the demo

1. pretrains the detection / segmentation backbones of the teacher and the
   student once on DigitsCls (the digits stand-in for the ImageNet-pretrained
   backbones of the COCO / Cityscapes recipes), cached under
   ``<work dir>/<task>/backbones`` and reused while their config is
   unchanged;
2. trains the teacher once from its pretrained backbone (cached the same
   way; retrained when its config or its backbone changes);
3. trains the student alone and with each distillation method under the
   same schedule, learning rate, seeds and pretrained backbone;
4. reports them with ``tools/compare_runs.py``'s report (metric mean ± sd
   and per seed, share of the teacher-student gap closed, time per
   iteration relative to the student alone, verdict against the student
   alone and the task's plain KD baseline), a bar chart and the learning
   curves, under ``<work dir>/<task>/``.

    python tools/demo.py                      # DigitsDet, one seed
    python tools/demo.py --seeds 3            # mean and spread over 3 seeds
    python tools/demo.py --task det seg cls   # all three tasks
    python tools/demo.py --tune               # validate on the tuning split
    python tools/demo.py --fmkt-steps 1 2 4 8 # + FM-KT test steps vs mAP

Every training run is a ``tools/train.py`` subprocess with glibc's allocator
told to keep freed memory (``MALLOC_MMAP_MAX_=0``,
``MALLOC_TRIM_THRESHOLD_``): on CPU this removes the page faults of fresh
``mmap`` blocks at every step, for every method alike.
"""
import argparse
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(ROOT, 'configs', 'demo')
sys.path.insert(0, ROOT)

#: glibc settings of every training subprocess (see the module docstring).
ALLOCATOR_ENV = dict(MALLOC_MMAP_MAX_='0',
                     MALLOC_TRIM_THRESHOLD_=str(1 << 40))

# task -> title, metric key, metric name, teacher config, backbone
# pretraining configs (role -> config), plain KD baseline, methods
# (key -> (label, config))
TASKS = {
    'det': dict(
        title='DigitsDet, RetinaNet R18-c16 student <- RetinaNet R18 teacher',
        metric='coco/bbox_mAP', metric_name='mAP',
        teacher='retinanet_r18_digits_teacher.py',
        backbones=dict(teacher='retinanet_r18_digits_backbone.py',
                       student='retinanet_r18c16_digits_backbone.py'),
        baseline='pkd',
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
        backbones=dict(teacher='deeplabv3_r18_digits_backbone.py',
                       student='deeplabv3_r18c16_digits_backbone.py'),
        baseline='cwd',
        methods={
            'student': ('student alone', 'deeplabv3_r18c16_digits_student.py'),
            'cwd': ('+ CWD on logits', 'cwd_deeplabv3_r18_r18c16_digits.py'),
            'diffkd': ('+ DiffKD on logits (DIST)',
                       'diffkd_deeplabv3_r18_r18c16_digits.py'),
            'fmkt': ('+ FM-KT segmentation flow',
                     'fmkt_deeplabv3_r18_r18c16_digits.py'),
        }),
    'cls': dict(
        title='DigitsCls, ResNet-18-c8 student <- ResNet-18 teacher',
        metric='accuracy/top1', metric_name='top-1',
        teacher='resnet18_cifar_digits_teacher.py',
        backbones={},
        baseline='kd',
        methods={
            'student': ('student alone', 'resnet18c8_cifar_digits_student.py'),
            'kd': ('+ KD on logits', 'kd_resnet18_r18c8_digits.py'),
            'diffkd': ('+ DiffKD (feature + logits)',
                       'diffkd_resnet18_r18c8_digits.py'),
            'fmkt': ('+ FM-KT logit flow', 'fmkt_resnet18_r18c8_digits.py'),
            'fmkt_theta': ('+ FM-KT-Theta',
                           'fmkt_theta_resnet18_r18c8_digits.py'),
            'ofmkt': ('OFM-KT (online, no teacher)',
                      'ofmkt_resnet18c8_digits.py'),
        }),
}

#: Data root of the tuning split (``--tune``) per dataset class.
TUNE_DATA = {
    'mmkdflow.DigitsDetDataset': 'data/digits_det_tune/',
    'mmkdflow.DigitsSegDataset': 'data/digits_seg_tune/',
    'mmkdflow.DigitsClsDataset': 'data/digits_cls_tune/',
}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command line of the demo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs',
                                                       'demo'))
    parser.add_argument('--task', nargs='+', default=['det'],
                        choices=list(TASKS))
    parser.add_argument('--seeds', type=int, default=1,
                        help='number of seeds per method (mean and spread)')
    parser.add_argument('--methods', nargs='+', default=None,
                        help='subset of the task\'s methods (default: all; '
                        'the student alone is always trained)')
    parser.add_argument('--retrain-teacher', action='store_true',
                        help='retrain the teacher and the backbones even '
                        'when their caches are valid')
    parser.add_argument('--tune', action='store_true',
                        help='train on the train digits minus the tuning '
                        'digits and validate on the tuning split (other '
                        'source digits than val): for choosing '
                        'hyper-parameters, never for reported numbers')
    parser.add_argument('--smoke', action='store_true',
                        help='a few images and one epoch per run: checks '
                        'the pipeline, not the methods (used by the tests)')
    parser.add_argument('--fmkt-steps', type=int, nargs='+', default=None,
                        metavar='N',
                        help='after the det task, test the exported plain '
                        'FM-KT student (seed 0) at these numbers of flow '
                        'steps, e.g. 1 2 4 8 (fmkt_steps.md / .png)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra --cfg-options for every training run')
    return parser.parse_args(argv)


# ----------------------------------------------------------------- configs
def _load(config: str):
    from mmengine.config import Config
    return Config.fromfile(config)


def _is_distiller(cfg) -> bool:
    return isinstance(cfg.model, dict) and 'student' in cfg.model


def run_options(cfg, smoke: bool = False, tune: bool = False) -> List[str]:
    """``--cfg-options`` the demo adds to one config's run.

    Args:
        cfg: The run's config.
        smoke: Shrink the run to a few images and one epoch (or 4
            iterations) with one validation pass, logging every iteration.
        tune: Train and validate on the tuning split of the config's
            digits dataset (see ``--tune``) instead of the reported
            train / val split.

    Returns:
        ``key=value`` strings.

    Raises:
        ValueError: ``tune`` for a config whose dataset has no tuning split.
    """
    options = []
    if tune:
        kind = cfg.train_dataloader.dataset.type
        if kind not in TUNE_DATA:
            raise ValueError(f'{cfg.filename}: dataset {kind!r} has no '
                             f'tuning split; --tune needs one of '
                             f'{sorted(TUNE_DATA)}')
        root = TUNE_DATA[kind]
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            options += [f'{loader}.dataset.data_root={root}',
                        f'{loader}.dataset.digits_options.holdout=tune']
        if kind == 'mmkdflow.DigitsDetDataset':
            for name in ('val_evaluator', 'test_evaluator'):
                options.append(f'{name}.ann_file={root}annotations/val.json')
    if smoke:
        by_iter = 'max_iters' in cfg.train_cfg
        options += ['train_dataloader.dataset.indices=16',
                    'val_dataloader.dataset.indices=8',
                    'default_hooks.logger.interval=1']
        for loader in ('train_dataloader', 'val_dataloader'):
            options += [f'{loader}.num_workers=0',
                        f'{loader}.persistent_workers=False']
        if cfg.train_dataloader.dataset.type == 'mmkdflow.DigitsDetDataset':
            # after two steps no box passes 0.05, and mmdet's CocoMetric
            # logs no metric at all for an empty result
            model = 'model.student' if _is_distiller(cfg) else 'model'
            options.append(f'{model}.test_cfg.score_thr=0.0')
        if by_iter:
            options += ['train_cfg.max_iters=4', 'train_cfg.val_interval=2',
                        'default_hooks.checkpoint.interval=4']
        else:
            options += ['train_cfg.max_epochs=2', 'train_cfg.val_interval=1',
                        'default_hooks.checkpoint.interval=1']
    return options


def backbone_option(cfg, checkpoint: str) -> str:
    """The ``--cfg-options`` entry that points the student's (or the plain
    model's) backbone ``init_cfg`` at ``checkpoint``.

    Raises:
        ValueError: The config's backbone is not initialised from a
            ``Pretrained`` checkpoint (the demo would silently train it from
            scratch).
    """
    if _is_distiller(cfg):
        from mmkdflow.models.utils.model_builder import locate_config
        student = cfg.model.student
        model = _load(locate_config(student['cfg_path'])).model \
            if 'cfg_path' in student else student
        key = 'model.student.backbone.init_cfg.checkpoint'
    else:
        model, key = cfg.model, 'model.backbone.init_cfg.checkpoint'
    init = (model.get('backbone') or {}).get('init_cfg') or {}
    if init.get('type') != 'Pretrained':
        raise ValueError(
            f'the demo starts every detection / segmentation student from a '
            f'pretrained backbone, but {cfg.filename} has backbone init_cfg '
            f'{init!r}: set init_cfg=dict(type="Pretrained", checkpoint=..., '
            f'prefix="backbone.") in its student config')
    return f'{key}={checkpoint}'


# ------------------------------------------------------------------ caches
def fingerprint(config: str, options: Sequence[str] = (),
                depends: Sequence[str] = ()) -> str:
    """Hash of a run's resolved config, its extra options and the
    fingerprints it depends on (e.g. the teacher on its backbone): a cached
    run is reused only while this is unchanged."""
    text = _load(config).pretty_text
    digest = hashlib.sha256(text.encode())
    for item in (*options, '|', *depends):
        digest.update(b'\0' + str(item).encode())
    return digest.hexdigest()[:16]


STAMP = 'mmkdflow_demo_cache.json'


def cached_run(config: str, work_dir: str, label: str, metric: str,
               options: Sequence[str] = (), depends: Sequence[str] = (),
               retrain: bool = False) -> dict:
    """Train ``config`` into ``work_dir`` unless a run with the same
    fingerprint finished there (its stamp file and checkpoint exist).

    Returns:
        The stamp: ``fingerprint``, ``checkpoint`` (the last one),
        ``work_dir``.
    """
    stamp_path = osp.join(work_dir, STAMP)
    key = fingerprint(config, options, depends)
    stamp = {}
    if osp.isfile(stamp_path):
        with open(stamp_path) as f:
            stamp = json.load(f)
    if (not retrain and stamp.get('fingerprint') == key
            and osp.isfile(stamp.get('checkpoint', ''))):
        print(f'{label}: reusing {stamp["checkpoint"]}')
        return stamp
    if stamp:
        print(f'{label}: config changed (or --retrain-teacher): retraining')
    else:
        print(f'{label}: training (first run only; cached afterwards)')
    if osp.isfile(stamp_path):
        os.remove(stamp_path)
    train(config, work_dir, 0, label, metric, list(options))
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    stamp = dict(fingerprint=key, checkpoint=checkpoint, work_dir=work_dir)
    with open(stamp_path, 'w') as f:
        json.dump(stamp, f, indent=1)
    return stamp


def extract_backbone(stamp: dict, out: str) -> str:
    """Write the ``backbone.*`` weights of a pretraining checkpoint to
    ``out`` (what ``init_cfg=dict(type='Pretrained', prefix='backbone.')``
    reads), unless ``out`` already holds those of this fingerprint."""
    import torch

    import mmkdflow  # noqa: F401  (allow-lists MMEngine's checkpoint types)
    meta_path = out + '.json'
    if osp.isfile(out) and osp.isfile(meta_path):
        with open(meta_path) as f:
            if json.load(f).get('fingerprint') == stamp['fingerprint']:
                return out
    ckpt = torch.load(stamp['checkpoint'], map_location='cpu',
                      weights_only=True)
    state = {k: v for k, v in ckpt['state_dict'].items()
             if k.startswith('backbone.')}
    if not state:
        raise RuntimeError(f'{stamp["checkpoint"]} holds no backbone.* '
                           f'weights: is it an ImageClassifier checkpoint?')
    os.makedirs(osp.dirname(out), exist_ok=True)
    torch.save(dict(state_dict=state), out + '.tmp')
    os.replace(out + '.tmp', out)
    with open(meta_path, 'w') as f:
        json.dump(dict(fingerprint=stamp['fingerprint'],
                       source=stamp['checkpoint']), f, indent=1)
    return out


# ---------------------------------------------------------------- training
def _progress(line: str) -> Optional[str]:
    for marker in ('Epoch(train)', 'Iter(train)'):
        if marker in line:
            # '[2][ 10/200]': mmengine pads the iteration to a fixed width
            where = ''.join(line.split(marker)[1].split('lr:')[0].split())
            loss = line.split('loss:')[1].split()[0] if 'loss:' in line \
                else '?'
            return f'{marker[:-7].lower()} {where}  loss {loss}'
    return None


def train(config: str, work_dir: str, seed: int, label: str, metric: str,
          options: List[str]):
    """One ``tools/train.py`` run (subprocess); returns its RunRecord."""
    from mmkdflow.reporting import metric_scale, read_run
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config,
           '--work-dir', work_dir, '--cfg-options', f'randomness.seed={seed}',
           *options]
    start = time.time()
    print(f'  [{label}] training (log: {work_dir})', flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED='1',
                                     **ALLOCATOR_ENV))
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
        raise SystemExit(f'{label} failed (exit {proc.returncode}); full '
                         f'log under {work_dir}')
    record = read_run(work_dir, metric)
    print(f'\r  [{label}] done in {time.time() - start:.0f}s: {metric} '
          f'{record.final:.4f} in the log'
          + (f' ({record.value:.1f} %)' if metric_scale(metric) != 1 else '')
          + ' ' * 30, flush=True)
    return record


def run_task(name: str, args: argparse.Namespace):
    """Backbones, teacher, every method x seed, then the report."""
    from mmkdflow.reporting import compare, read_run
    task = TASKS[name]
    work_dir = osp.join(args.work_dir, name + ('_tune' if args.tune else ''))
    os.makedirs(work_dir, exist_ok=True)
    methods = args.methods or list(task['methods'])
    unknown = sorted(set(methods) - set(task['methods']))
    if unknown:
        raise SystemExit(f'--methods {unknown} not available for {name}; '
                         f'choose from {list(task["methods"])}')
    if 'student' not in methods:
        methods = ['student', *methods]
    tune = args.tune
    print(f'== {task["title"]}' + (' [tuning split]' if tune else ''))

    def options(cfg) -> List[str]:
        return run_options(cfg, args.smoke, tune) + list(args.cfg_options)

    # 1. pretrained backbones
    backbones: Dict[str, dict] = {}
    for role, file in task['backbones'].items():
        config = osp.join(DEMO, file)
        stem = osp.splitext(file)[0]
        stamp = cached_run(config, osp.join(work_dir, 'backbones', stem),
                           f'{role} backbone', 'accuracy/top1',
                           options(_load(config)),
                           retrain=args.retrain_teacher)
        path = extract_backbone(stamp, osp.join(work_dir, 'backbones',
                                                stem + '.pth'))
        backbones[role] = dict(stamp, path=path)

    # 2. the teacher
    config = osp.join(DEMO, task['teacher'])
    cfg = _load(config)
    t_options = options(cfg)
    depends = []
    if 'teacher' in backbones:
        t_options.append(backbone_option(cfg, backbones['teacher']['path']))
        depends.append(backbones['teacher']['fingerprint'])
    teacher = cached_run(config, osp.join(work_dir, 'teacher'), 'teacher',
                         task['metric'], t_options, depends,
                         retrain=args.retrain_teacher)

    # 3. every method x seed
    results = {}
    for method in methods:
        label, file = task['methods'][method]
        config = osp.join(DEMO, file)
        cfg = _load(config)
        m_options = options(cfg)
        if _is_distiller(cfg) and cfg.model.get('teacher') is not None:
            m_options.append(f'model.teacher_ckpt={teacher["checkpoint"]}')
        if 'student' in backbones:
            m_options.append(backbone_option(cfg,
                                             backbones['student']['path']))
        results[method] = [
            train(config, osp.join(work_dir, method, f'seed{seed}'), seed,
                  f'{method} seed {seed}', task['metric'], m_options)
            for seed in range(args.seeds)]

    # 4. the report
    report = compare(
        teacher=[read_run(teacher['work_dir'], task['metric'])],
        student=results.pop('student'),
        methods={task['methods'][m][0]: runs for m, runs in results.items()},
        out_dir=work_dir, metric_name=task['metric_name'],
        title=task['title'] + (' [tuning split]' if tune else ''),
        baseline=task['methods'][task['baseline']][0]
        if task['baseline'] in results else None)
    print('\n' + report.table + f'\n\ntable: {report.markdown}\nchart: '
          f'{report.chart}\nlearning curves: {report.curves}\n')
    if args.fmkt_steps and 'fmkt' in results and name == 'det':
        fmkt_cfg = _load(osp.join(DEMO, task['methods']['fmkt'][1]))
        # the test split's part of the run's options (smoke / tuning data)
        test_options = [
            o.replace('val_', 'test_', 1)
            for o in run_options(fmkt_cfg, args.smoke, tune)
            if o.startswith(('val_dataloader.dataset', 'val_evaluator',
                             'model.student.test_cfg'))]
        fmkt_steps(name, work_dir, args.fmkt_steps, test_options)
    return report


def _run_tool(args: List[str], label: str) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, text=True,
                          capture_output=True,
                          env=dict(os.environ, **ALLOCATOR_ENV))
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


def fmkt_steps(name: str, work_dir: str, steps: Sequence[int],
               options: Sequence[str] = ()) -> str:
    """Evaluate the exported plain FM-KT student (seed 0) at N test steps.

    The student of ``<work dir>/<task>/fmkt/seed0`` is exported with
    ``tools/export_student.py`` (the student with its EMA flow) and tested
    with ``tools/test.py`` at batch 1 for every N in ``steps``
    (``num_steps_test``), which writes ``fmkt_steps.md`` (metric and
    milliseconds per image) and ``fmkt_steps.png`` (metric against latency)
    into the task's folder. Returns the table.
    """
    from mmkdflow.reporting import metric_scale
    task = TASKS[name]
    config = osp.join(DEMO, task['methods']['fmkt'][1])
    run = osp.join(work_dir, 'fmkt', 'seed0')
    with open(osp.join(run, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    out_dir = osp.join(work_dir, 'fmkt_steps')
    os.makedirs(out_dir, exist_ok=True)
    exported = osp.join(out_dir, 'fmkt_student.pth')
    _run_tool([osp.join(ROOT, 'tools', 'export_student.py'), config,
               checkpoint, exported], 'export of the FM-KT student')
    point = next(iter(_load(config).model.distill_points))
    rows = []
    for n in steps:
        print(f'  [fmkt steps] N = {n}', flush=True)
        text = _run_tool([
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


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Run the demo for every task asked for."""
    args = parse_args(argv)
    start = time.time()
    for name in args.task:
        run_task(name, args)
    print(f'total {time.time() - start:.0f}s')


if __name__ == '__main__':
    main()
