"""The command line and config loading that ``tools/train.py`` and
``tools/test.py`` share."""
import argparse
import os
import os.path as osp
from typing import Optional, Sequence, Tuple

from mmengine.config import Config, DictAction

from mmkdflow.utils.allocator import (add_allocator_argument,
                                      configure_allocator)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of both tools: ``--work-dir``, ``--cfg-options``,
    ``--launcher``, ``--local_rank`` and ``--no-allocator-tuning``."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value (xxx=yyy format)')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_allocator_argument(parser)


def parse_args(parser: argparse.ArgumentParser,
               argv=None) -> argparse.Namespace:
    """Parse ``argv`` and export ``LOCAL_RANK`` when the launcher did not.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_config(args: argparse.Namespace) -> Config:
    """The config file with ``--cfg-options``, the launcher and the work dir
    (``--work-dir``, else the config's, else ``./work_dirs/<config name>``).

    Returns:
        Config: The updated config.
    """
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


def start_tool(parser: argparse.ArgumentParser,
               argv: Optional[Sequence[str]] = None
               ) -> Tuple[argparse.Namespace, Config]:
    """What both tools do first: parse ``argv``, apply mmkdflow's glibc
    allocator settings (unless ``--no-allocator-tuning``; glibc then keeps
    freed activations for reuse instead of returning them to the kernel at
    every step, see :mod:`mmkdflow.utils.allocator`) and load the config.

    Returns:
        tuple[argparse.Namespace, Config]: The parsed arguments and the config.
    """
    args = parse_args(parser, argv)
    configure_allocator(enabled=not args.no_allocator_tuning)
    return args, load_config(args)


def build_runner(cfg: Config):
    """Set up the distributed environment the config asks for (see
    :func:`~mmkdflow.distributed.setup_distributed`) and build its runner:
    ``runner_type`` when the config names one, else MMEngine's
    ``Runner``.

    Returns:
        Runner: The built runner.
    """
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from mmkdflow.distributed import setup_distributed
    setup_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
