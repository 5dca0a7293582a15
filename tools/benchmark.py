"""What mmkdflow costs next to the student it trains.

    python tools/benchmark.py                       # CPU, 2x3x800x1333
    python tools/benchmark.py --device cuda --repeats 10
    python tools/benchmark.py --quick               # tiny sizes (the test)

Allocator: the benchmark applies mmkdflow's glibc malloc settings
(:mod:`mmkdflow.utils.allocator`) like ``tools/train.py`` does. With the
``step`` section, it first measures the distillation step with glibc's
defaults (``--no-allocator-compare`` skips that), then applies the
settings and measures everything else: before and after in one run.
``--no-allocator-tuning`` (or ``MMKDFLOW_ALLOCATOR=off``) keeps the
defaults throughout.

Measured in one process, on the same random inputs, every piece warmed up
and then timed interleaved with the others (median of ``--repeats`` runs):

a) connector forward+backward time, peak memory, parameters and FLOPs of
   DiffKD and FM-KT (N in ``--steps``, convnext meta-encoder) on the FPN
   levels of a RetinaNet R50 student (5 levels, 256 channels, strides 8 to
   128 of the input), against the student network's own forward+backward;
   also FM-KT with per-step activation checkpointing (``--no-checkpoint``
   drops these rows) and DiffKD / FM-KT under ``torch.compile`` with
   their compile time (``--no-compile`` drops these rows); FM-KT time and
   peak memory against N per variant, also plotted (``--plot``);
b) a whole distillation training step (teacher forward, student,
   connector, losses, SGD update) against a student-only step, RetinaNet
   R50 <- X101-64x4d, random weights, and what the distiller adds beyond
   the teacher's forward and the connector's own work, with glibc's
   default malloc and with mmkdflow's settings;
c) inference latency, parameters and FLOPs of exported students (DiffKD,
   FM-KT-Theta, plain FM-KT with its flow) against the vanilla student;
d) FLOPs (mmengine.analysis) of every piece, seconds per GFLOP, and whether
   the goals are met;
e) where the time goes: the operators of the student network, DiffKD and
   FM-KT (smallest N) forward+backward under ``torch.profiler``, sorted into
   GEMM/convolution, normalisation, activation and the rest, with the
   seconds per GFLOP of the GEMMs alone;
f) the size of a training checkpoint of the users' first config,
   ``configs/fmkt/fmkt_retinanet-x101_retinanet-r50_fpn_2x_coco.py``
   (random weights, optimizer state after one step), with the frozen
   teacher inside and without it (mmkdflow's teacher-free checkpoints).

The table is printed and the numbers are written as JSON (``--out``).
"""
import argparse
import datetime
import json
import os
import os.path as osp
import platform
import sys
import time

os.environ.setdefault('KINETO_LOG_LEVEL', '5')  # silence the CPU profiler

import torch  # noqa: E402

import mmkdflow  # noqa: E402,F401
from mmkdflow.utils.allocator import (add_allocator_argument,  # noqa: E402
                                      allocator_state, configure_allocator,
                                      disabled_by_env, user_tunes_malloc)
from mmkdflow_tools.benchmark import (CHECKPOINT_CONFIG, FLOP_METHOD,  # noqa
                                      MEMORY_METHODS, breakdown_section,
                                      checkpoint_section, connector_section,
                                      evaluate_goals, export_section,
                                      format_report, plot_scaling,
                                      step_section)
from mmkdflow_tools.benchmark.builders import (STUDENT_CFG,  # noqa: E402
                                               TEACHER_CFG, build_detector,
                                               det_batch, padded_size)

SECTIONS = ('connectors', 'step', 'export', 'breakdown', 'checkpoint')
#: --quick: tiny sizes, and no torch.compile rows (each compilation costs
#: minutes of CPU; the compiled paths are covered by
#: tests/test_models/test_utils/test_compile_paths.py)
QUICK = dict(input_size=[64, 96], batch=2, repeats=1, warmup=1,
             compile=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Benchmark the cost of mmkdflow connectors, '
        'distillation steps and exported students')
    parser.add_argument('--device', choices=['cpu', 'cuda'],
                        help='default: cpu (cuda needs to be asked for)')
    parser.add_argument('--input-size', type=int, nargs=2,
                        default=[800, 1333], metavar=('H', 'W'),
                        help='image size; padded to a multiple of 32 as '
                        "mmdet's data preprocessor does")
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=3,
                        help='timed runs per piece (the median is kept)')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed runs per piece first')
    parser.add_argument('--steps', type=int, nargs='+', default=[1, 4, 8],
                        help='FM-KT step counts N of section a')
    parser.add_argument('--diffkd-channels-last', action='store_true',
                        help='section a also measures DiffKD with '
                        'channels_last=True')
    parser.add_argument('--checkpoint', action=argparse.BooleanOptionalAction,
                        default=True,
                        help='section a: FM-KT rows with per-step '
                        'activation checkpointing (default: on)')
    parser.add_argument('--compile', action=argparse.BooleanOptionalAction,
                        default=True,
                        help='section a: DiffKD and FM-KT rows under '
                        'torch.compile, with compile time (default: on)')
    parser.add_argument('--allocator-compare',
                        action=argparse.BooleanOptionalAction, default=True,
                        help='section b: also measure the step with glibc\'s '
                        'default malloc first (default: on)')
    add_allocator_argument(parser)
    parser.add_argument('--plot', default=None,
                        help='plot of FM-KT time and peak memory against N '
                        '(default: next to --out, .png)')
    parser.add_argument('--sections', nargs='+', choices=SECTIONS,
                        default=list(SECTIONS))
    parser.add_argument('--threads', type=int,
                        help='torch CPU threads (default: torch\'s own)')
    parser.add_argument('--student', default=STUDENT_CFG,
                        help='student detector config')
    parser.add_argument('--teacher', default=TEACHER_CFG,
                        help='teacher detector config')
    parser.add_argument('--out', default='work_dirs/benchmark/benchmark.json')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--quick', action='store_true',
                        help=f'tiny sizes for tests: {QUICK}')
    return parser


def log(message: str) -> None:
    print(f'[{time.strftime("%H:%M:%S")}] {message}', flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device is available')
    if args.device is None and torch.cuda.is_available():
        log('a CUDA device is present; --device cuda measures on it')
    args.device = torch.device(args.device or 'cpu')
    from mmkdflow.compat import torch_at_least
    from mmkdflow.models.utils.compile import COMPILE_MIN_TORCH
    if args.compile and not torch_at_least(COMPILE_MIN_TORCH):
        log(f'torch {torch.__version__}: no torch.compile rows (compile=True '
            f'needs torch >= {COMPILE_MIN_TORCH})')
        args.compile = False
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeats < 1 or args.warmup < 0 or args.batch < 1:
        raise SystemExit('need --repeats >= 1, --warmup >= 0, --batch >= 1')
    return args


def run(args: argparse.Namespace) -> dict:
    """Run the selected sections and return the JSON-ready result."""
    device = args.device
    torch.manual_seed(args.seed)
    height, width = padded_size(*args.input_size)
    result = dict(meta=dict(
        device=str(device) if device.type == 'cpu' else
        f'{device} ({torch.cuda.get_device_name(device)})',
        threads=torch.get_num_threads(), torch=torch.__version__,
        python=platform.python_version(), machine=platform.processor() or
        platform.machine(), date=datetime.datetime.now().isoformat(
            timespec='seconds'),
        input_size=list(args.input_size), padded_size=[height, width],
        batch=args.batch, repeats=args.repeats, warmup=args.warmup,
        student=args.student, teacher=args.teacher,
        flop_method=FLOP_METHOD, memory_method=MEMORY_METHODS[device.type],
        command=' '.join([osp.join('tools', 'benchmark.py')] + args.argv),
    ))
    log(f'building the student {args.student} (random weights)')
    student = build_detector(args.student, device)
    inputs, samples = det_batch(args.batch, height, width, device,
                                args.seed)
    teacher = None
    tuning = not args.no_allocator_tuning
    already = allocator_state() is not None and allocator_state().applied
    # a "before" only when the settings are about to change something
    compare = tuning and args.allocator_compare and not already and \
        not disabled_by_env() and not user_tunes_malloc()
    if 'step' in args.sections:
        log(f'building the teacher {args.teacher} (random weights)')
        teacher = build_detector(args.teacher, device)
        if compare:
            log('[b] glibc default malloc (before the allocator settings)')
            result['distill_step_default_malloc'] = step_section(
                student, teacher, inputs, samples, device, args.student,
                args.teacher, args.warmup, args.repeats, log)
    state = configure_allocator(enabled=tuning)
    result['meta']['allocator'] = state.as_dict()
    log(f'allocator: {state.reason}')
    if 'connectors' in args.sections:
        result['connectors'] = connector_section(
            student, inputs, device, args.steps, args.warmup, args.repeats,
            log, args.diffkd_channels_last, args.checkpoint, args.compile)
    if 'step' in args.sections:
        result['distill_step'] = step_section(
            student, teacher, inputs, samples, device, args.student,
            args.teacher, args.warmup, args.repeats, log)
        del teacher
    if 'export' in args.sections:
        result['export'] = export_section(
            student, inputs, device, args.student, args.teacher,
            args.warmup, args.repeats, log)
    if 'breakdown' in args.sections:
        result['breakdown'] = breakdown_section(
            student, inputs, device, args.steps, args.repeats, log)
    if 'checkpoint' in args.sections:
        result['checkpoint'] = checkpoint_section(CHECKPOINT_CONFIG, log)
    result['goals'] = evaluate_goals(result)
    return result


def main(argv=None) -> dict:
    args = parse_args(argv)
    result = run(args)
    print(format_report(result), flush=True)
    out_dir = osp.dirname(args.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'\nresults written to {args.out}')
    scaling = (result.get('connectors') or {}).get('flow_scaling')
    if scaling:
        path = args.plot or osp.splitext(args.out)[0] + '.png'
        if plot_scaling(result, path):
            print(f'plot of FM-KT time and peak memory against N: {path}')
    return result


if __name__ == '__main__':
    main()
