"""What ``tools/train.py`` and ``tools/test.py`` share: arguments, config
set-up, distributed start on machines without a GPU, safe checkpointing
(:func:`use_safe_checkpointing`), and the choice and checks of the
checkpoint ``--resume`` continues from.

Distributed runs without a GPU
    MMEngine 0.10.7 starts every launcher with ``torch.cuda.set_device`` and
    wraps the model in DDP with ``device_ids=[LOCAL_RANK]``; both fail on a
    CPU-only machine. :func:`setup_distributed` then picks the ``gloo``
    backend (or the one named by ``MMKDFLOW_DIST_BACKEND``), starts the
    process group itself (MMEngine's ``Runner`` skips its own start when a
    group exists), builds DDP without ``device_ids`` and drops ``sync_bn``.
    With a GPU nothing changes: the config's ``env_cfg.dist_cfg.backend``
    (``nccl``) is used by MMEngine as usual.
"""
import argparse
import os
import os.path as osp
import subprocess
from typing import Any, Dict, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from mmkdflow.utils.checkpoint_loading import check_checkpoint_file

#: Environment variable naming the ``torch.distributed`` backend to use
#: (``gloo``, ``nccl``, ``mpi``); it overrides ``env_cfg.dist_cfg.backend``.
BACKEND_ENV = 'MMKDFLOW_DIST_BACKEND'


# ------------------------------------------------------------ arguments
def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of both tools: ``--work-dir``, ``--cfg-options``,
    ``--launcher`` and ``--local_rank``."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value (xxx=yyy format)')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse ``argv`` and export ``LOCAL_RANK`` when the launcher did not."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_config(args: argparse.Namespace) -> Config:
    """The config file with ``--cfg-options``, the launcher and the work dir
    (``--work-dir``, else the config's, else ``./work_dirs/<config name>``)."""
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


def apply_amp(cfg: Config, cuda: Optional[bool] = None) -> None:
    """``--amp``: fp16 ``AmpOptimWrapper`` on CUDA, bf16
    ``mmkdflow.AutocastOptimWrapper`` on CPU.

    Raises:
        ValueError: The config uses another optimizer wrapper.
    """
    optim_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if optim_type not in ('OptimWrapper', 'AmpOptimWrapper'):
        raise ValueError(f'--amp works with OptimWrapper, but the config '
                         f'uses {optim_type}')
    if torch.cuda.is_available() if cuda is None else cuda:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:
        cfg.optim_wrapper.type = 'mmkdflow.AutocastOptimWrapper'
        cfg.optim_wrapper.device_type = 'cpu'
        cfg.optim_wrapper.dtype = 'bfloat16'


def apply_resume(cfg: Config, resume: Optional[str]) -> None:
    """``--resume`` (the latest complete checkpoint of the work dir) or
    ``--resume PATH``; a ``load_from`` of the config is checked as well.

    Without a path the checkpoint is chosen here, not by MMEngine:
    ``last_checkpoint`` when it names a complete file, else the newest
    complete checkpoint of the work dir, with a log line saying why (see
    :func:`~mmkdflow.engine.hooks.find_resume_checkpoint`). Every file is
    checked first (:func:`~mmkdflow.utils.check_checkpoint_file`), so a
    missing, damaged or unsafe file is reported in mmkdflow's words.
    """
    if resume is None:
        if cfg.get('load_from'):
            check_checkpoint_file(cfg.load_from, 'load_from')
        return
    cfg.resume = True
    if resume != 'auto':
        check_checkpoint_file(resume, 'resume checkpoint')
        cfg.load_from = resume
        return
    from .hooks.safe_checkpoint_hook import find_resume_checkpoint
    cfg.load_from = find_resume_checkpoint(cfg.work_dir)
    if cfg.load_from is None:
        cfg.resume = False
        print_log(f'--resume: no checkpoint in {cfg.work_dir}; training '
                  f'starts from scratch', 'current')


def use_safe_checkpointing(cfg: Config) -> None:
    """Make the run safe to kill at any moment (``tools/train.py`` calls
    this for every config).

    * ``default_hooks.checkpoint``: MMEngine's ``CheckpointHook`` becomes
      :class:`~mmkdflow.engine.SafeCheckpointHook` with the same arguments
      (atomic writes; the old checkpoint is deleted only after the new one
      and ``last_checkpoint`` are in place);
    * ``train_cfg``: MMEngine's ``EpochBasedTrainLoop`` becomes
      :class:`~mmkdflow.engine.ResumableEpochBasedTrainLoop` (resuming from
      an iteration checkpoint continues inside the epoch) and its
      ``IterBasedTrainLoop`` :class:`~mmkdflow.engine.ResumableIterBasedTrainLoop`
      (the random states survive the skipping of trained batches).

    Other hook and loop types (a config's own) are left as they are.
    """
    hooks = cfg.get('default_hooks')
    checkpoint = hooks.get('checkpoint') if hooks else None
    if isinstance(checkpoint, dict) and str(checkpoint.get(
            'type', '')).split('.')[-1] == 'CheckpointHook':
        checkpoint['type'] = 'mmkdflow.SafeCheckpointHook'
    train_cfg = cfg.get('train_cfg')
    if isinstance(train_cfg, dict):
        loop = train_cfg.get('type')
        if loop is None and train_cfg.get('by_epoch', False):
            train_cfg.pop('by_epoch')
            loop = 'EpochBasedTrainLoop'
        if loop is None and train_cfg.get('by_epoch') is False:
            train_cfg.pop('by_epoch')
            loop = 'IterBasedTrainLoop'
        name = str(loop).split('.')[-1]
        if name in ('EpochBasedTrainLoop', 'IterBasedTrainLoop'):
            train_cfg['type'] = f'mmkdflow.Resumable{name}'


def add_resume_state_hook(cfg: Config) -> None:
    """Append :class:`ResumeStateHook` to ``custom_hooks`` unless present
    (``tools/train.py`` always does, so that every checkpoint it writes can
    be resumed with the same random draws)."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(str(h.get('type', '')).split('.')[-1] == 'ResumeStateHook'
               for h in hooks if isinstance(h, dict)):
        hooks.append(dict(type='mmkdflow.ResumeStateHook'))
    cfg.custom_hooks = hooks


# ---------------------------------------------------------- distributed
def setup_distributed(cfg: Config, cuda: Optional[bool] = None) -> None:
    """Prepare a distributed launch (``cfg.launcher != 'none'``).

    The backend is ``$MMKDFLOW_DIST_BACKEND`` if set, else ``gloo`` when no
    GPU is present, else the config's (``nccl``). Without a GPU the process
    group is started here (``pytorch`` and ``slurm`` launchers), DDP is
    configured without ``device_ids`` and ``sync_bn`` is dropped (SyncBN
    layers are turned into BN when the models are built, see
    :func:`mmkdflow.models.utils.model_builder.revert_syncbn_without_gpu`).
    """
    if cfg.get('launcher', 'none') == 'none':
        return
    cuda = torch.cuda.is_available() if cuda is None else cuda
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    backend = os.environ.get(BACKEND_ENV)
    if backend is None and not cuda and dist_cfg.get('backend') != 'gloo':
        backend = 'gloo'
        print_log(f'no GPU: distributed training uses the gloo backend '
                  f'instead of {dist_cfg.get("backend", "nccl")!r} (set '
                  f'{BACKEND_ENV} to choose another)', 'current')
    if backend is not None:
        dist_cfg['backend'] = backend
    if cuda:
        return
    if cfg.get('sync_bn') is not None:
        print_log(f'no GPU: ignoring sync_bn={cfg.sync_bn!r} (SyncBN needs '
                  f'GPUs)', 'current')
        cfg.sync_bn = None
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    if 'DistributedDataParallel' in str(wrapper.get(
            'type', 'MMDistributedDataParallel')):
        wrapper['device_ids'] = None  # a CPU module takes none
    cfg.model_wrapper_cfg = wrapper
    init_cpu_process_group(cfg.launcher, dict(dist_cfg))


def init_cpu_process_group(launcher: str, dist_cfg: Dict[str, Any]) -> None:
    """Start ``torch.distributed`` like MMEngine's ``init_dist`` minus
    ``torch.cuda.set_device`` (no-op when a group exists).

    Raises:
        ValueError: For the ``mpi`` launcher (start such runs with the
            pytorch or slurm launcher on CPU).
    """
    import datetime

    import torch.distributed as dist
    if dist.is_initialized():
        return
    kwargs = dict(dist_cfg)
    backend = kwargs.pop('backend', 'gloo')
    if kwargs.get('timeout') is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    if launcher == 'slurm':
        _export_slurm_env(kwargs.pop('port', None))
    elif launcher != 'pytorch':
        raise ValueError(f'launcher {launcher!r} is not supported without a '
                         f'GPU; use --launcher pytorch or slurm')
    dist.init_process_group(
        backend=backend, rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']), **kwargs)


def _export_slurm_env(port: Optional[int]) -> None:
    """The ``RANK``/``WORLD_SIZE``/``MASTER_*`` variables MMEngine derives
    from SLURM's, without a GPU."""
    proc_id = int(os.environ['SLURM_PROCID'])
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        node_list = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {node_list} | head -n1')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ['RANK'] = str(proc_id)
