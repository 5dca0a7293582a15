"""Compare distillation runs with their teacher and the student alone.

Reads MMEngine's own logs (``<work_dir>/<timestamp>/vis_data/scalars.json``)
of finished ``tools/train.py`` runs and writes the table ``make demo`` prints
(metric mean ± sd and per seed, share of the teacher-student gap closed, time
per iteration relative to the student alone, verdict against the student
alone and the plain KD baseline: better / within spread / worse), a bar chart
and the learning curves (validation metric per epoch)::

    python tools/compare_runs.py \\
        --teacher work_dirs/retinanet_x101 \\
        --student work_dirs/r50_alone/seed0 work_dirs/r50_alone/seed1 \\
        --method "PKD" work_dirs/pkd/seed0 work_dirs/pkd/seed1 \\
        --method "FM-KT" work_dirs/fmkt \\
        --baseline PKD --out work_dirs/report

Each path is a run's work dir or a folder of them (``seed0``, ``seed1``...).
The metric key defaults to the first of ``coco/bbox_mAP``, ``mIoU``,
``accuracy/top1`` that the student's runs logged; COCO metrics (logged as
fractions) are reported x 100, mIoU and top-1 as logged (already percent).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmkdflow_tools.reporting import (compare, pick_metric,  # noqa: E402
                                      read_runs, seed_dirs)

METRIC_NAMES = {'coco/bbox_mAP': 'mAP', 'coco/segm_mAP': 'mask mAP',
                'mIoU': 'mIoU', 'accuracy/top1': 'top-1'}


def parse_args(argv=None) -> argparse.Namespace:
    """Command line of the tool."""
    parser = argparse.ArgumentParser(
        description='Table, bar chart and learning curves of distillation '
        'runs against their teacher and the student alone')
    parser.add_argument('--teacher', nargs='+', required=True,
                        help='work dir(s) of the teacher run')
    parser.add_argument('--student', nargs='+', required=True,
                        help='work dirs of the student alone (one per seed, '
                        'or a folder of them)')
    parser.add_argument('--method', nargs='+', action='append', default=[],
                        metavar=('LABEL', 'DIR'),
                        help='a distillation method: its label, then the '
                        'work dirs of its seeds (repeat per method)')
    parser.add_argument('--baseline', default=None,
                        help='label of the plain KD method the others are '
                        'judged against')
    parser.add_argument('--metric', default=None,
                        help='evaluator key (default: the first of '
                        'coco/bbox_mAP, mIoU, accuracy/top1 that was logged)')
    parser.add_argument('--metric-name', default=None,
                        help='column name of the metric (default from key)')
    parser.add_argument('--title', default='')
    parser.add_argument('--out', required=True,
                        help='folder for results.md/.json/.png, curves.png')
    args = parser.parse_args(argv)
    for method in args.method:
        if len(method) < 2:
            parser.error(f'--method {method[0]!r} needs at least one work '
                         f'dir after its label')
    labels = [m[0] for m in args.method]
    if len(set(labels)) != len(labels):
        parser.error(f'method labels must be unique, got {labels}')
    if args.baseline is not None and args.baseline not in labels:
        parser.error(f'--baseline {args.baseline!r} is not a --method label '
                     f'({labels})')
    return args


def main(argv=None) -> int:
    """Run the comparison; print the table and the written paths."""
    args = parse_args(argv)
    metric = args.metric
    if metric is None:
        metric = pick_metric(seed_dirs(args.student[0])[0])
        if metric is None:
            raise SystemExit(
                f'{args.student[0]} logged none of coco/bbox_mAP, mIoU, '
                f'accuracy/top1: pass --metric with the evaluator key')
    report = compare(
        teacher=read_runs(args.teacher, metric),
        student=read_runs(args.student, metric),
        methods={m[0]: read_runs(m[1:], metric) for m in args.method},
        out_dir=args.out,
        metric_name=args.metric_name or METRIC_NAMES.get(metric, metric),
        title=args.title, baseline=args.baseline)
    print(report.table)
    print(f'\ntable: {report.markdown}\nnumbers: {report.json}\n'
          f'chart: {report.chart}\nlearning curves: {report.curves}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
