"""Section f of ``tools/benchmark.py``: the size on disk of a training
checkpoint of the users' first config, with the frozen teacher inside (the
format before teacher-free checkpoints) and without it (today's)."""
import os.path as osp
import tempfile
from typing import Callable, Dict, Optional

import torch

#: The users' first config (FM-KT, RetinaNet R50 <- X101-64x4d, COCO), in
#: the checkout these tools belong to.
_ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CHECKPOINT_CONFIG = osp.join(
    _ROOT, 'configs', 'fmkt',
    'fmkt_retinanet-x101_retinanet-r50_fpn_2x_coco.py')


def _size_mb(path: str) -> float:
    return osp.getsize(path) / 1e6


def checkpoint_section(config: str, log: Callable[[str], None],
                       model_overrides: Optional[dict] = None) -> Dict:
    """Write one training checkpoint of ``config``'s distiller both ways.

    The teacher gets random weights saved as a real ``teacher_ckpt`` file;
    the optimizer state is that of the config's optimizer after one step
    (SGD momentum buffers for every trained parameter), so the file holds
    what ``CheckpointHook`` writes: ``meta``, ``state_dict``, ``optimizer``.

    Args:
        config: A distiller config with a frozen teacher.
        log: Progress printer.
        model_overrides: Merged into ``cfg.model`` (tests use tiny models).

    Returns:
        ``dict(config, teacher_mb, with_teacher_mb, without_teacher_mb,
        ratio, teacher_keys_left)``, sizes in MB (10^6 bytes).
    """
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS
    from mmengine.runner.checkpoint import (get_state_dict, save_checkpoint,
                                            weights_to_cpu)

    from mmkdflow.models.utils.model_builder import build_task_model
    cfg = Config.fromfile(config)
    model_cfg = cfg.model
    for key, value in (model_overrides or {}).items():
        model_cfg[key] = value  # replaced, not merged
    model_cfg.setdefault('_scope_', 'mmkdflow')
    with tempfile.TemporaryDirectory() as tmp:
        log(f'[f] building the teacher of {config} (random weights)')
        teacher = build_task_model(model_cfg.teacher, 'teacher')
        teacher_ckpt = osp.join(tmp, 'teacher.pth')
        torch.save({'meta': {}, 'state_dict': teacher.state_dict()},
                   teacher_ckpt)
        del teacher
        model_cfg.teacher_ckpt = teacher_ckpt
        model = MODELS.build(model_cfg)
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
        for param in model.parameters():
            if param.requires_grad:
                param.grad = torch.zeros_like(param)
        optim.step()
        state = weights_to_cpu(get_state_dict(model))
        checkpoint = dict(meta=dict(epoch=1, iter=1), state_dict=state,
                          optimizer=optim.state_dict())
        without = osp.join(tmp, 'teacher_free.pth')
        save_checkpoint(checkpoint, without)
        teacher_state = {f'teacher.{k}': v.cpu() for k, v in
                         model.teacher.state_dict().items()}
        with_teacher = osp.join(tmp, 'with_teacher.pth')
        save_checkpoint(dict(checkpoint, state_dict={**state,
                                                     **teacher_state}),
                        with_teacher)
        result = dict(
            config=config, teacher_mb=_size_mb(teacher_ckpt),
            with_teacher_mb=_size_mb(with_teacher),
            without_teacher_mb=_size_mb(without),
            teacher_keys_left=len([k for k in state
                                   if k.startswith('teacher.')]))
        result['ratio'] = result['without_teacher_mb'] / \
            result['with_teacher_mb']
    log(f"[f] checkpoint {result['with_teacher_mb']:.0f} MB with the "
        f"teacher, {result['without_teacher_mb']:.0f} MB without")
    return result


def format_checkpoint_section(section: Dict) -> list:
    """The report lines of section f."""
    return [
        '', f"[f] training checkpoint of {section['config']} (meta, "
        f"state_dict, optimizer after one step)",
        f"    with the frozen teacher inside: "
        f"{section['with_teacher_mb']:.0f} MB; without it (today): "
        f"{section['without_teacher_mb']:.0f} MB ({section['ratio']:.2f}x; "
        f"the teacher file itself: {section['teacher_mb']:.0f} MB)"]
