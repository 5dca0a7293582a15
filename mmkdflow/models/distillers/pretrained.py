"""Pretrained weights named by ``init_cfg``: fetched before training, or an
error that says which module asked for them and how to change that.

A downstream model config often keeps ``init_cfg=dict(type='Pretrained',
checkpoint='torchvision://resnet50')`` in its backbone. MMEngine downloads
it inside ``init_weights``, after the whole runner is built, and on a
machine without internet fails with a bare ``URLError`` that names no
module. :func:`fetch_pretrained` runs first (from the distiller's
``init_weights``): it resolves each remote ``Pretrained`` checkpoint of the
modules still to be initialised (student, and a teacher without
``teacher_ckpt``) to its URL, downloads it into the cache MMEngine reads
(once), checks that local ones exist, and raises
:class:`~mmkdflow.engine.checkpoint.CheckpointError` naming the module and
the fix when that fails.
"""
import os.path as osp
from typing import List, Optional, Tuple

import torch.nn as nn

from mmkdflow.engine.checkpoint.loading import (CheckpointError, fetch_url,
                                               is_remote)


def _url_of(checkpoint: str) -> Optional[str]:
    """The download URL MMEngine uses for a ``Pretrained`` checkpoint name
    (``None`` for a scheme mmkdflow leaves to MMEngine, e.g. ``s3://``)."""
    from mmengine.runner import checkpoint as ckpt
    if checkpoint.startswith(('http://', 'https://')):
        return checkpoint
    if checkpoint.startswith('torchvision://'):
        return ckpt.get_torchvision_models().get(checkpoint[14:])
    if checkpoint.startswith('mmcls://'):
        return ckpt.get_mmcls_models().get(checkpoint[8:])
    for prefix in ('open-mmlab://', 'openmmlab://'):
        if checkpoint.startswith(prefix):
            name = checkpoint[len(prefix):]
            name = ckpt.get_deprecated_model_names().get(name, name)
            url = ckpt.get_external_models().get(name)
            return url if url and url.startswith('http') else None
    return None


def pretrained_checkpoints(model: nn.Module, prefix: str = ''
                           ) -> List[Tuple[str, str]]:
    """``(module path, checkpoint)`` for every ``Pretrained`` ``init_cfg``
    among the modules of ``model`` that ``init_weights`` will still
    initialise (a loaded teacher is marked initialised and skipped).

    Returns:
        list[tuple[str, str]]: ``(module path, checkpoint)`` pairs.
    """
    found = []
    for name, module in model.named_modules():
        if getattr(module, '_is_init', False):
            continue
        cfgs = getattr(module, 'init_cfg', None)
        for cfg in cfgs if isinstance(cfgs, list) else [cfgs]:
            if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained' \
                    and isinstance(cfg.get('checkpoint'), str):
                path = '.'.join(p for p in (prefix, name) if p)
                found.append((path, cfg['checkpoint']))
    return found


def remote_pretrained(model: nn.Module, prefix: str = ''
                      ) -> List[Tuple[str, str]]:
    """The :func:`pretrained_checkpoints` that name a remote file.

    Returns:
        list[tuple[str, str]]: ``(module path, checkpoint)`` pairs.
    """
    return [(path, ckpt) for path, ckpt in
            pretrained_checkpoints(model, prefix) if is_remote(ckpt)]


def fetch_pretrained(model: nn.Module, prefix: str = '') -> None:
    """Download the remote ``Pretrained`` checkpoints of ``model`` now, and
    check that the local ones exist.

    Args:
        model (nn.Module): The model whose ``init_weights`` follows (the
            distiller).
        prefix (str): Its name in messages and config keys (``''`` for the
            distiller itself: ``student.backbone``). Defaults to ''.

    Raises:
        CheckpointError: A download failed or a local file is missing or a
            directory; the message names the module, its ``init_cfg``
            checkpoint, and how to point ``init_cfg`` at a local file or
            remove it (and for a download, the cache file to put it at).
    """
    for path, checkpoint in pretrained_checkpoints(model, prefix):
        fix = (f"set that init_cfg's checkpoint to a local file in the "
               f'config (model.{path}.init_cfg.checkpoint), or set '
               f'model.{path}.init_cfg=None to start from random weights')
        if not is_remote(checkpoint):
            if not osp.isfile(osp.expanduser(checkpoint)):
                problem = 'is a directory' if osp.isdir(checkpoint) \
                    else 'does not exist'
                raise CheckpointError(
                    f'the init_cfg of {path} (Pretrained) names '
                    f'{checkpoint!r}, which {problem}: {fix}')
            continue
        url = _url_of(checkpoint)
        if url is None:
            continue
        fetch_url(
            url, f'the init_cfg of {path} (Pretrained, checkpoint='
            f'{checkpoint!r})', fix)
