"""Loading and freezing the teacher of an offline distiller."""
from typing import Optional

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule

from mmkdflow.engine.checkpoint import (extract_state_dict,
                                        load_checkpoint_file,
                                        load_weights_strictly)


def load_teacher(teacher: nn.Module, teacher_ckpt: Optional[str],
                 allow_random_teacher: bool) -> None:
    """Load ``teacher_ckpt`` into ``teacher`` key by key, then freeze it.

    The checkpoint is read on CPU with safe loading; every missing,
    unexpected or mis-shaped key is an error. After loading, every
    ``BaseModule`` of the teacher is marked initialised so that
    ``init_weights`` (run by the Runner) can neither overwrite the loaded
    weights nor fetch the backbone's pretrained ``init_cfg``.

    Args:
        teacher (nn.Module): The built teacher model.
        teacher_ckpt (str, optional): Path or URL of its trained weights, or
            ``None``.
        allow_random_teacher (bool): Accept ``teacher_ckpt=None`` on purpose.

    Raises:
        ValueError: No checkpoint and ``allow_random_teacher`` is False.
        FileNotFoundError, CheckpointError: See
            :func:`mmkdflow.engine.checkpoint.load_checkpoint_file` and
            :func:`mmkdflow.engine.checkpoint.load_weights_strictly`.
    """
    if teacher_ckpt is None:
        if not allow_random_teacher:
            raise ValueError(
                'no teacher_ckpt given: distilling from a randomly '
                'initialised teacher teaches nothing. Set teacher_ckpt to '
                'the trained teacher weights (path or URL), or set '
                'allow_random_teacher=True if that is really intended')
        print_log('the teacher is randomly initialised '
                  '(allow_random_teacher=True)', 'current')
    else:
        checkpoint = load_checkpoint_file(teacher_ckpt, 'teacher_ckpt')
        state = extract_state_dict(checkpoint, 'teacher_ckpt')
        load_weights_strictly(teacher, state, 'teacher_ckpt', teacher_ckpt)
        for module in teacher.modules():
            if isinstance(module, BaseModule):
                module._is_init = True
        print_log(f'loaded teacher weights from {teacher_ckpt}', 'current')
    teacher.requires_grad_(False)
    teacher.eval()
