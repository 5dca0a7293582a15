"""Write the deployable model of a distiller checkpoint.

    python tools/export_student.py CONFIG CKPT OUT [--cfg-options K=V ...]

writes ``OUT`` (weights + dataset meta) and, beside it, ``OUT`` with the
suffix ``.py``: its config.

* Feature KD, DiffKD, FM-KT-Theta: the student's own model and config,
  loadable with safe loading by ``mmdet.apis.init_detector``,
  ``mmseg.apis.init_model`` or mmpretrain's ``get_model``, without mmkdflow.
* Plain FM-KT / OFM-KT, where the flow is part of the student's inference:
  an ``mmkdflow.Distiller`` with ``teacher=None`` holding the student
  and the flow connectors (EMA weights when the checkpoint has them); its
  config imports mmkdflow (``custom_imports``), so ``tools/test.py``, a
  ``Runner`` or ``MODELS.build`` + ``load_checkpoint`` run it like the
  distiller's student; so do mmpretrain's ``get_model`` and mmdet's
  ``init_detector(cfg, ckpt, cfg_options={})`` (without ``cfg_options``
  mmdet reads ``config.model.backbone``, which the wrapper has not).
  mmseg's ``init_model`` sets ``model.pretrained``/``train_cfg``, which
  ``Distiller`` does not take: use ``tools/test.py`` there.
"""
import argparse
import os.path as osp

from typing import Optional

from mmengine.config import Config, DictAction

import mmkdflow  # noqa: F401
from mmkdflow.engine.student_export import export_distiller
from mmkdflow.engine.checkpoint import load_checkpoint_file, save_atomic


def parse_args():
    parser = argparse.ArgumentParser(
        description='Export the student of a distiller checkpoint')
    parser.add_argument('config', help='the distillation config')
    parser.add_argument('checkpoint', help='a checkpoint of the distiller')
    parser.add_argument('out', help='output checkpoint path (.pth)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value (xxx=yyy format), '
        'e.g. model.teacher_ckpt=/new/place/teacher.pth')
    return parser.parse_args()


def export(config: str, checkpoint: str, out: str,
           cfg_options: Optional[dict] = None) -> str:
    """Export and return the path of the written config.

    Args:
        config (str): The distillation config.
        checkpoint (str): A checkpoint of the distiller (``~`` expanded).
        out (str): Where the student checkpoint goes (``~`` expanded).
        cfg_options (dict, optional): ``--cfg-options`` merged into the
            config. Defaults to None.
    """
    cfg = Config.fromfile(osp.expanduser(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    out = osp.expanduser(out)
    ckpt = load_checkpoint_file(checkpoint, 'checkpoint')
    model_ckpt, model_cfg = export_distiller(cfg, ckpt)
    save_atomic(model_ckpt, out)
    cfg_out = osp.splitext(out)[0] + '.py'
    model_cfg.dump(cfg_out)
    return cfg_out


def main():
    args = parse_args()
    cfg_out = export(args.config, args.checkpoint, args.out,
                     args.cfg_options)
    print(f'student checkpoint: {osp.expanduser(args.out)}\n'
          f'student config: {cfg_out}')


if __name__ == '__main__':
    main()
