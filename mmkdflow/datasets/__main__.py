"""Command line of the digits datasets::

    python -m mmkdflow.datasets --out data --tasks det seg cls --seed 0

Builds (or reuses) the embedded digits datasets and prints where each one is
and how big it is.
"""
import argparse
import sys
import time

from .digits import DIGITS_TASKS, prepare_digits, read_marker


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m mmkdflow.datasets',
        description='Build the embedded demo datasets (detection, '
        'segmentation, classification) from scikit-learn\'s 8x8 digits.')
    parser.add_argument('--out', default='data',
                        help='parent folder of digits_det/, digits_seg/, '
                        'digits_cls/ (default: data)')
    parser.add_argument('--tasks', nargs='+', default=list(DIGITS_TASKS),
                        choices=list(DIGITS_TASKS),
                        help='datasets to build (default: det seg cls)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--num-train', type=int, default=None,
                        help='train canvases for det/seg (default: 800)')
    parser.add_argument('--num-val', type=int, default=None,
                        help='val canvases for det/seg (default: 200)')
    return parser.parse_args(argv)


def _describe(sizes: dict) -> str:
    parts = []
    for split in ('train', 'val'):
        text = f'{split}={sizes.get(split + "_images", 0)} images'
        if split + '_instances' in sizes:
            text += f' / {sizes[split + "_instances"]} boxes'
        parts.append(text)
    return ', '.join(parts)


def main(argv=None) -> int:
    args = parse_args(argv)
    canvas = {}
    if args.num_train is not None:
        canvas['num_train'] = args.num_train
    if args.num_val is not None:
        canvas['num_val'] = args.num_val
    kwargs = {task: dict(canvas) for task in ('det', 'seg')
              if task in args.tasks and canvas}
    start = time.perf_counter()
    roots = prepare_digits(args.out, tasks=args.tasks, seed=args.seed,
                           **kwargs)
    for task, root in roots.items():
        marker = read_marker(root) or {}
        print(f'{task}: {root}  ({_describe(marker.get("sizes", {}))})')
    print(f'done in {time.perf_counter() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
