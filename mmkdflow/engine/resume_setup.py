"""The config keys of ``tools/train.py``'s ``--resume``, as mmdet's
``tools/train.py`` sets them. Which checkpoint a resume reads, and the
checks of that file, belong to ``SafeTrainingHook``."""
import os.path as osp
from typing import Optional

from mmengine.config import Config


def apply_resume(cfg: Config, resume: Optional[str]) -> None:
    """``--resume`` sets ``resume=True`` and ``load_from=None`` (the run's
    newest complete checkpoint); ``--resume PATH`` sets ``resume=True`` and
    ``load_from=PATH``; no flag changes nothing.

    Args:
        cfg (Config): The training config.
        resume (str, optional): ``'auto'``, a checkpoint path, or ``None``.
    """
    if resume is None:
        return
    cfg.resume = True
    cfg.load_from = None if resume == 'auto' else osp.expanduser(resume)
