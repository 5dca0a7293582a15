"""What ``tools/train.py`` and ``tools/test.py`` share: arguments, config
set-up, distributed start on machines without a GPU, and the hook that makes
``--resume`` exact (random states, strict weights).

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
import logging
import os
import os.path as osp
import random
import subprocess
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmkdflow.registry import HOOKS
from mmkdflow.utils.checkpoint import (CheckpointError, check_checkpoint_file,
                                       state_dict_mismatch)

#: Environment variable naming the ``torch.distributed`` backend to use
#: (``gloo``, ``nccl``, ``mpi``); it overrides ``env_cfg.dist_cfg.backend``.
BACKEND_ENV = 'MMKDFLOW_DIST_BACKEND'
#: The checkpoint entry written by :class:`ResumeStateHook`.
RANDOM_STATES_KEY = 'random_states'


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
    """``--resume`` (latest checkpoint of the work dir) or ``--resume
    PATH``; the checkpoint file is checked first
    (:func:`~mmkdflow.utils.checkpoint.check_checkpoint_file`)."""
    if resume is None:
        return
    cfg.resume = True
    cfg.load_from = None if resume == 'auto' else resume
    if cfg.load_from is not None:
        check_checkpoint_file(cfg.load_from, 'resume checkpoint')
    else:
        from mmengine.runner import find_latest_checkpoint
        latest = find_latest_checkpoint(cfg.work_dir) \
            if osp.isdir(cfg.work_dir) else None
        if latest is not None:
            check_checkpoint_file(latest, 'latest checkpoint of the work dir')


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


# -------------------------------------------------------- resume states
def check_resume_weights(model: torch.nn.Module, checkpoint: dict) -> None:
    """Refuse to resume from weights of another architecture.

    Raises:
        CheckpointError: Listing missing/unexpected keys and shape
            mismatches between the checkpoint and the model.
    """
    from mmengine.model import is_model_wrapper
    if is_model_wrapper(model):
        model = model.module
    state = checkpoint.get('state_dict', checkpoint)
    state = {k[7:] if k.startswith('module.') else k: v
             for k, v in state.items()}
    mismatch = state_dict_mismatch(model.state_dict(), state)
    if mismatch is not None:
        raise CheckpointError(
            f'the resume checkpoint does not match the '
            f'{type(model).__name__} built from the config: {mismatch}. '
            f'Resume with the config the checkpoint was trained with, or '
            f'use load_from (non-strict, no resume) to start a new run '
            f'from it')


def capture_random_states() -> Dict[str, Any]:
    """The generators' states as tensors and plain Python values, so that
    ``torch.load(weights_only=True)`` reads them back without any
    allow-list (torch CPU and CUDA, numpy's global, Python's ``random``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = dict(
        torch=torch.get_rng_state(),
        numpy=dict(kind=str(kind), keys=torch.from_numpy(
            keys.astype(np.int64)), pos=int(pos), has_gauss=int(has_gauss),
            cached_gaussian=float(cached)),
        python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: Dict[str, Any]) -> None:
    """Inverse of :func:`capture_random_states`."""
    torch.set_rng_state(states['torch'])
    numpy = states['numpy']
    np.random.set_state((numpy['kind'], numpy['keys'].numpy().astype(
        np.uint32), numpy['pos'], numpy['has_gauss'],
        numpy['cached_gaussian']))
    version, internal, gauss = states['python']
    random.setstate((version, tuple(internal), gauss))
    if states.get('cuda') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])


@HOOKS.register_module()
class ResumeStateHook(Hook):
    """Make resuming exact: the random number generators are saved with
    every checkpoint and restored on resume, and a resume checkpoint of
    another architecture is refused.

    MMEngine's resume restores the model, optimizer, schedulers, message hub
    and seed but not the generators' states, so a resumed run would draw
    other noise (DiffKD timesteps and noise, FM-KT step counts and pairings,
    dropout) than an uninterrupted one. This hook stores them under
    ``checkpoint['random_states']`` and restores them in ``before_train``,
    after every other resume step. Validation inside training runs between
    a saved state and the next epoch, so the states are also restored after
    each validation: validating never changes what training draws.

    MMEngine also resumes non-strictly (mismatching weights are only
    logged, leaving them at their initial values); this hook raises
    :class:`~mmkdflow.utils.CheckpointError` listing the mismatches
    instead. ``load_from`` without resume (fine-tuning) is left alone.

    Distributed runs save rank 0's states (MMEngine saves on rank 0 only)
    and restore them on every rank: right for the default
    ``randomness.diff_rank_seed=False``, where all ranks share their states;
    with ``diff_rank_seed=True`` ranks other than 0 keep their fresh seeds
    (a warning says so).
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._pending: Optional[Dict[str, Any]] = None
        self._before_val: Optional[Dict[str, Any]] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[RANDOM_STATES_KEY] = capture_random_states()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from (fine-tuning) keeps the run's own seed
        check_resume_weights(runner.model, checkpoint)
        states = checkpoint.get(RANDOM_STATES_KEY)
        if states is None:
            print_log('the resumed checkpoint holds no random states (saved '
                      'without ResumeStateHook): random draws will differ '
                      'from the interrupted run', 'current',
                      level=logging.WARNING)
            return
        if runner.rank != 0 and runner._randomness_cfg.get('diff_rank_seed'):
            print_log('diff_rank_seed=True: only rank 0 restores its random '
                      'states', 'current', level=logging.WARNING)
            return
        self._pending = states

    def before_train(self, runner) -> None:
        if self._pending is not None:
            restore_random_states(self._pending)
            self._pending = None
            print_log('random states restored from the resumed checkpoint',
                      'current')

    def before_val_epoch(self, runner) -> None:
        self._before_val = capture_random_states()

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._before_val is not None:
            restore_random_states(self._before_val)
            self._before_val = None
