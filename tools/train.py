"""Train a distiller (or any OpenMMLab model) with MMEngine's Runner.

Each flag sets a config key, as mmdet's ``tools/train.py`` does; the config
holds everything else. Configs that inherit
``configs/_base_/default_runtime_distill.py`` are safe to kill and to
resume, under this tool as under any other entry point.

Without a GPU, ``--launcher pytorch`` (``tools/dist_train.sh``) and
``--launcher slurm`` run on CPU with the gloo backend (see
:mod:`mmkdflow.distributed`).
"""
import argparse

import mmkdflow  # noqa: F401  registers mmkdflow's modules
from mmkdflow.engine.optim_setup import apply_amp, apply_auto_scale_lr
from mmkdflow.engine.resume_setup import apply_resume
from mmkdflow.engine.tool_args import (add_common_args, build_runner,
                                       start_tool)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Train a distiller')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--amp', action='store_true',
        help='mixed precision: optim_wrapper.type=AmpOptimWrapper on CUDA, '
        'mmkdflow.AutocastOptimWrapper (bf16) on CPU')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume=True: from the given checkpoint (load_from), or from '
        'the newest complete one of the work dir when no path is given')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='auto_scale_lr.enable=True: scale the learning rate by the '
        "actual batch size over the config's auto_scale_lr.base_batch_size")
    add_common_args(parser)
    return parser


def main(argv=None) -> None:
    args, cfg = start_tool(build_parser(), argv)
    if args.amp:
        apply_amp(cfg)
    if args.auto_scale_lr:
        apply_auto_scale_lr(cfg)
    apply_resume(cfg, args.resume)
    build_runner(cfg).train()


if __name__ == '__main__':
    main()
