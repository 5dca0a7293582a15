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
   same schedule, learning rate, seeds and pretrained backbone, ``--jobs``
   runs side by side with ``--threads`` threads each (default 2 x 1: one
   thread per run keeps its numbers independent of the machine's core
   count, and two single-thread runs on 2 cores finish sooner than the
   same runs one after the other with 2 threads each; the backbones and
   the teacher train first, one at a time, with all jobs x threads);
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
    python tools/demo.py --seeds 3 --teacher-seed 1  # another teacher

Every distillation run keeps the frozen teacher's tensors of each image
after the first epoch (``model.teacher_cache=True``,
:class:`~mmkdflow.models.distillers.teacher_cache.TeacherOutputCache`):
the digits train pipelines have no random transform, so the teacher would
compute the same tensors again; ``--no-teacher-cache`` turns it off.

Every training run is a ``tools/train.py`` subprocess, which applies
mmkdflow's glibc allocator settings at start-up like any user's run
(:mod:`mmkdflow.utils.allocator`): on CPU this removes the page faults of
fresh ``mmap`` blocks at every step, for every method alike.
"""
import argparse
import os
import os.path as osp
import sys
import time
from typing import List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(ROOT, 'configs', 'demo')
sys.path.insert(0, ROOT)

from mmkdflow_tools.demo import (RunPool, backbone_option,  # noqa: E402
                                 cached_run, extract_backbone, fmkt_steps,
                                 is_distiller, load_config, run_options, train)

# task -> title, metric key, metric name, teacher config, backbone
# pretraining configs (role -> config), plain KD baseline, methods
# (key -> (label, config))
#: The pair and schedule part of each task's distillation config names
#: (``{method}_<pair>``, see docs/user_guide.md "Config names").
DET_PAIR = 'atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det.py'
SEG_PAIR = 'deeplabv3-r18_deeplabv3-r18c16_1xb8-600it_digits-seg.py'
CLS_PAIR = 'resnet18_resnet18c8_1xb32-10e_digits-cls.py'

TASKS = {
    'det': dict(
        title='DigitsDet, ATSS R18-c8 student <- ATSS R18 teacher',
        metric='coco/bbox_mAP', metric_name='mAP',
        teacher='teacher_atss-r18_fpn_1xb16-12e_digits-det.py',
        backbones=dict(
            teacher='pretrain_atss-r18_1xb32-6e_digits-cls.py',
            student='pretrain_atss-r18c8_1xb32-6e_digits-cls.py'),
        baseline='pkd',
        methods={
            'student': ('student alone',
                        'student_atss-r18c8_fpn_1xb16-8e_digits-det.py'),
            'pkd': ('+ PKD on FPN (feature KD)', f'pkd_{DET_PAIR}'),
            'diffkd': ('+ DiffKD', f'diffkd_{DET_PAIR}'),
            'fmkt': ('+ FM-KT', f'fmkt_{DET_PAIR}'),
            'fmkt_theta': ('+ FM-KT-Theta', f'fmkt-theta_{DET_PAIR}'),
        }),
    'seg': dict(
        title='DigitsSeg, DeepLabV3 R18-c16 student <- DeepLabV3 R18 teacher',
        metric='mIoU', metric_name='mIoU',
        teacher='teacher_deeplabv3-r18_1xb8-600it_digits-seg.py',
        backbones=dict(
            teacher='pretrain_deeplabv3-r18_1xb32-6e_digits-cls.py',
            student='pretrain_deeplabv3-r18c16_1xb32-6e_digits-cls.py'),
        baseline='cwd',
        methods={
            'student': ('student alone',
                        'student_deeplabv3-r18c16_1xb8-600it_digits-seg.py'),
            'cwd': ('+ CWD on logits', f'cwd_{SEG_PAIR}'),
            'diffkd': ('+ DiffKD on logits (DIST)', f'diffkd_{SEG_PAIR}'),
            'fmkt': ('+ FM-KT segmentation flow', f'fmkt_{SEG_PAIR}'),
        }),
    'cls': dict(
        title='DigitsCls, ResNet-18-c8 student <- ResNet-18 teacher',
        metric='accuracy/top1', metric_name='top-1',
        teacher='teacher_resnet18_1xb32-10e_digits-cls.py',
        backbones={},
        baseline='kd',
        methods={
            'student': ('student alone',
                        'student_resnet18c8_1xb32-10e_digits-cls.py'),
            'kd': ('+ KD on logits', f'kd_{CLS_PAIR}'),
            'diffkd': ('+ DiffKD (feature + logits)', f'diffkd_{CLS_PAIR}'),
            'fmkt': ('+ FM-KT logit flow', f'fmkt_{CLS_PAIR}'),
            'fmkt_theta': ('+ FM-KT-Theta', f'fmkt-theta_{CLS_PAIR}'),
            'ofmkt': ('OFM-KT (online, no teacher)',
                      'ofmkt_resnet18c8_1xb32-10e_digits-cls.py'),
        }),
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
    parser.add_argument('--teacher-seed', type=int, default=0,
                        help='seed of the backbones\' pretraining and of '
                        'the teacher (default 0); another value trains '
                        'another teacher under <work dir>/<task>_teacher-'
                        'seed<N>, e.g. to see whether a verdict holds for '
                        'more than one teacher')
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
    parser.add_argument('--no-teacher-cache', dest='teacher_cache',
                        action='store_false',
                        help='run the teacher at every step instead of '
                        'reusing its tensors of an image after the first '
                        'epoch (the digits pipelines have no random '
                        'transform; tools/train.py refuses the cache for a '
                        'pipeline that has one)')
    parser.add_argument('--jobs', type=int, default=2,
                        help='compared runs (student alone, methods, seeds) '
                        'trained side by side (default 2, for the 2 cores '
                        'the demo is sized for)')
    parser.add_argument('--threads', type=int, default=1,
                        help='intra-op threads of each compared run '
                        '(default 1: its numbers then do not depend on the '
                        'machine\'s core count; compare runs only at equal '
                        '--threads); the backbones and the teacher train '
                        'one at a time with jobs x threads')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra --cfg-options for every training run')
    args = parser.parse_args(argv)
    for name, least in (('jobs', 1), ('threads', 1), ('teacher_seed', 0)):
        if getattr(args, name) < least:
            parser.error(f'--{name.replace("_", "-")} must be at least '
                         f'{least}, got {getattr(args, name)}')
    return args


def run_task(name: str, args: argparse.Namespace):
    """Backbones, teacher, every method x seed, then the report."""
    from mmkdflow_tools.reporting import compare, read_run
    task = TASKS[name]
    suffix = ((' [tuning split]' if args.tune else '')
              + (f' [teacher seed {args.teacher_seed}]'
                 if args.teacher_seed else ''))
    work_dir = osp.join(args.work_dir, name + ('_tune' if args.tune else '')
                        + (f'_teacher-seed{args.teacher_seed}'
                           if args.teacher_seed else ''))
    os.makedirs(work_dir, exist_ok=True)
    methods = args.methods or list(task['methods'])
    unknown = sorted(set(methods) - set(task['methods']))
    if unknown:
        raise SystemExit(f'--methods {unknown} not available for {name}; '
                         f'choose from {list(task["methods"])}')
    if 'student' not in methods:
        methods = ['student', *methods]
    tune = args.tune
    print(f'== {task["title"]}{suffix}')

    def options(cfg) -> List[str]:
        return run_options(cfg, args.smoke, tune) + list(args.cfg_options)

    # the backbones and the teacher, trained once and cached, run one at a
    # time with every thread of the pool; the compared runs side by side
    shared_threads = args.jobs * args.threads

    # 1. pretrained backbones
    backbones = {}
    for role, file in task['backbones'].items():
        config = osp.join(DEMO, file)
        stem = osp.splitext(file)[0]
        stamp = cached_run(config, osp.join(work_dir, 'backbones', stem),
                           f'{role} backbone', 'accuracy/top1',
                           options(load_config(config)),
                           retrain=args.retrain_teacher,
                           threads=shared_threads, seed=args.teacher_seed)
        path = extract_backbone(stamp, osp.join(work_dir, 'backbones',
                                                stem + '.pth'))
        backbones[role] = dict(stamp, path=path)

    # 2. the teacher
    config = osp.join(DEMO, task['teacher'])
    cfg = load_config(config)
    t_options = options(cfg)
    depends = []
    if 'teacher' in backbones:
        t_options.append(backbone_option(cfg, backbones['teacher']['path']))
        depends.append(backbones['teacher']['fingerprint'])
    teacher = cached_run(config, osp.join(work_dir, 'teacher'), 'teacher',
                         task['metric'], t_options, depends,
                         retrain=args.retrain_teacher, threads=shared_threads,
                         seed=args.teacher_seed)

    # 3. every method x seed, --jobs runs side by side
    configs, m_options = {}, {}
    for method in methods:
        configs[method] = osp.join(DEMO, task['methods'][method][1])
        cfg = load_config(configs[method])
        m_options[method] = options(cfg)
        if is_distiller(cfg) and cfg.model.get('teacher') is not None:
            m_options[method].append(
                f'model.teacher_ckpt={teacher["checkpoint"]}')
            if args.teacher_cache:  # every method alike; see the docstring
                m_options[method].append('model.teacher_cache=True')
        if 'student' in backbones:
            m_options[method].append(
                backbone_option(cfg, backbones['student']['path']))
    # seed by seed; the student alone, the cheapest run, last in each seed
    # so that it fills the end of the other slot
    order = [m for m in methods if m != 'student'] + ['student']
    with RunPool(args.jobs) as pool:
        futures = {
            (m, seed): pool.submit(
                train, configs[m], osp.join(work_dir, m, f'seed{seed}'),
                seed, f'{m} seed {seed}', task['metric'], m_options[m],
                threads=args.threads, progress=args.jobs == 1)
            for seed in range(args.seeds) for m in order}
    results = {m: [futures[m, seed].result() for seed in range(args.seeds)]
               for m in methods}

    # 4. the report
    report = compare(
        teacher=[read_run(teacher['work_dir'], task['metric'])],
        student=results.pop('student'),
        methods={task['methods'][m][0]: runs for m, runs in results.items()},
        out_dir=work_dir, metric_name=task['metric_name'],
        title=task['title'] + suffix,
        baseline=task['methods'][task['baseline']][0]
        if task['baseline'] in results else None)
    print('\n' + report.table + f'\n\ntable: {report.markdown}\nchart: '
          f'{report.chart}\nlearning curves: {report.curves}\n')
    if args.fmkt_steps and 'fmkt' in results and name == 'det':
        fmkt_cfg = load_config(osp.join(DEMO, task['methods']['fmkt'][1]))
        # the test split's part of the run's options (smoke / tuning data)
        test_options = [
            o.replace('val_', 'test_', 1)
            for o in run_options(fmkt_cfg, args.smoke, tune)
            if o.startswith(('val_dataloader.dataset', 'val_evaluator',
                             'model.student.test_cfg'))]
        fmkt_steps(task, osp.join(DEMO, task['methods']['fmkt'][1]),
                   work_dir, args.fmkt_steps, test_options)
    return report


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Run the demo for every task asked for."""
    args = parse_args(argv)
    start = time.time()
    for name in args.task:
        run_task(name, args)
    print(f'total {time.time() - start:.0f}s')


if __name__ == '__main__':
    main()
