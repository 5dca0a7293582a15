"""Train a distiller (or any OpenMMLab model) with MMEngine's Runner.

Every run is safe to kill: checkpoints are written atomically and rotated
only once the new one is in place, and ``--resume`` continues from the
newest complete checkpoint, inside an epoch if it was written there (see
:func:`mmkdflow.engine.resume_setup.use_safe_checkpointing`).

A NaN/Inf loss or gradient stops the run before it reaches the weights
(``model.nonfinite='skip'`` skips such steps, ``'off'`` turns the check
off): the optim wrapper becomes its non-finite-guarded version, see
:func:`mmkdflow.engine.apply_nonfinite_guard`.

Without a GPU, ``--launcher pytorch`` (``tools/dist_train.sh``) and
``--launcher slurm`` run on CPU with the gloo backend (see
:mod:`mmkdflow.distributed`).
"""
import argparse

import mmkdflow  # noqa: F401  registers mmkdflow, safe checkpoint loading
from mmkdflow.engine.optim_setup import (apply_amp, apply_auto_scale_lr,
                                         apply_nonfinite_guard)
from mmkdflow.engine.resume_setup import (add_resume_state_hook, apply_resume,
                                          use_safe_checkpointing)
from mmkdflow.engine.tool_args import (add_common_args, build_runner,
                                       start_tool)
from mmkdflow.models.distillers.teacher_cache import check_teacher_cache


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Train a distiller')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--amp', action='store_true',
        help='mixed precision: fp16 AmpOptimWrapper on CUDA, bf16 autocast '
        '(mmkdflow.AutocastOptimWrapper) on CPU')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or from the latest complete '
        'one in the work dir when no path is given (model, optimizer, '
        'schedulers, EMA, random states and the position in the epoch)')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help="scale the learning rate by the actual batch size over the "
        "config's auto_scale_lr.base_batch_size (MMEngine's linear scaling "
        'rule)')
    add_common_args(parser)
    return parser


def main(argv=None) -> None:
    args, cfg = start_tool(build_parser(), argv)
    if args.amp:
        apply_amp(cfg)
    if args.auto_scale_lr:
        apply_auto_scale_lr(cfg)
    apply_nonfinite_guard(cfg)
    check_teacher_cache(cfg)
    apply_resume(cfg, args.resume)
    use_safe_checkpointing(cfg)
    add_resume_state_hook(cfg)
    build_runner(cfg).train()


if __name__ == '__main__':
    main()
