"""Distributed training with and without a GPU, and the SyncBN policy
that goes with it.

MMEngine 0.10.7 starts every launcher with ``torch.cuda.set_device`` and
wraps the model in DDP with ``device_ids=[LOCAL_RANK]``; both fail on a
CPU-only machine. :func:`setup_distributed` then picks the ``gloo`` backend
(or the one named by ``MMKDFLOW_DIST_BACKEND``), starts the process group
itself (MMEngine's ``Runner`` skips its own start when a group exists),
builds DDP without ``device_ids`` and drops ``sync_bn``; the SyncBN layers
the configs ask for become BN when the models are built
(:func:`revert_syncbn_without_gpu`). With a GPU nothing changes: the
config's ``env_cfg.dist_cfg.backend`` (``nccl``) is used by MMEngine as
usual.
"""
import os
import subprocess
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log

#: Environment variable naming the ``torch.distributed`` backend to use
#: (``gloo``, ``nccl``, ``mpi``); it overrides ``env_cfg.dist_cfg.backend``.
BACKEND_ENV = 'MMKDFLOW_DIST_BACKEND'


def _is_syncbn(module: nn.Module) -> bool:
    """torch's ``SyncBatchNorm`` or mmcv's (``mmcv.ops.SyncBatchNorm``)."""
    return isinstance(module, nn.SyncBatchNorm) or \
        type(module).__name__ == 'SyncBatchNorm'


def gpu_available() -> bool:
    """Whether a CUDA GPU is present (one place for tests to mock).

    Returns:
        bool: Whether a CUDA GPU is present.
    """
    return torch.cuda.is_available()


def revert_syncbn_without_gpu(model: nn.Module, role: str,
                              cuda: Optional[bool] = None) -> nn.Module:
    """Turn SyncBN layers into BN when no GPU is present.

    The mmseg configs use ``norm_cfg=dict(type='SyncBN')``; SyncBN needs
    GPUs (it raises on CPU tensors in distributed training). MMEngine's
    ``Runner`` reverts SyncBN only for single-process runs, so without a
    GPU the student and teacher are converted here, when they are built,
    with a log line; each process then normalises with its own batch (as
    ``BN`` does in DDP). With a GPU the model is returned unchanged.

    Args:
        model (nn.Module): A built student, teacher or connector.
        role (str): Named in the log line.
        cuda (bool, optional): Whether a GPU is present; ``None`` asks
            :func:`gpu_available`. Defaults to None.

    Returns:
        ``model`` itself, or a copy of it with ``BatchNorm`` layers (same
        weights and running statistics) in place of SyncBN.
    """
    if gpu_available() if cuda is None else cuda:
        return model
    count = sum(1 for m in model.modules() if _is_syncbn(m))
    if count == 0:
        return model
    from mmengine.model import revert_sync_batchnorm
    model = revert_sync_batchnorm(model)
    print_log(f'no GPU: converted {count} SyncBN layer(s) of the {role} to '
              f'BN (SyncBN needs GPUs)', 'current')
    return model


def setup_distributed(cfg: Config, cuda: Optional[bool] = None) -> None:
    """Prepare a distributed launch (``cfg.launcher != 'none'``).

    The backend is ``$MMKDFLOW_DIST_BACKEND`` if set, else ``gloo`` when no
    GPU is present, else the config's (``nccl``). Without a GPU the process
    group is started here (``pytorch`` and ``slurm`` launchers), DDP is
    configured without ``device_ids`` and ``sync_bn`` is dropped (SyncBN
    layers are turned into BN when the models are built, see
    :func:`revert_syncbn_without_gpu`).
    """
    if cfg.get('launcher', 'none') == 'none':
        return
    cuda = gpu_available() if cuda is None else cuda
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
