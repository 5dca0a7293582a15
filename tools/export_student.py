"""Write the student of a distiller checkpoint as a plain downstream model.

    python tools/export_student.py CONFIG CKPT OUT

writes ``OUT`` (weights + dataset meta, loadable with safe loading by
``mmdet.apis.init_detector``, ``mmseg.apis.init_model`` or mmpretrain's
``get_model``) and, beside it, ``OUT`` with the suffix ``.py``: the
student's own config, which needs no mmkdflow.
"""
import argparse
import os.path as osp

from mmengine.config import Config

import mmkdflow  # noqa: F401
from mmkdflow.engine import student_checkpoint, student_config
from mmkdflow.utils import load_checkpoint_file, save_atomic


def parse_args():
    parser = argparse.ArgumentParser(
        description='Export the student of a distiller checkpoint')
    parser.add_argument('config', help='the distillation config')
    parser.add_argument('checkpoint', help='a checkpoint of the distiller')
    parser.add_argument('out', help='output checkpoint path (.pth)')
    return parser.parse_args()


def export(config: str, checkpoint: str, out: str) -> str:
    """Export and return the path of the written student config."""
    cfg = Config.fromfile(config)
    ckpt = load_checkpoint_file(checkpoint, 'checkpoint')
    save_atomic(student_checkpoint(ckpt), out)
    cfg_out = osp.splitext(out)[0] + '.py'
    student_config(cfg).dump(cfg_out)
    return cfg_out


def main():
    args = parse_args()
    cfg_out = export(args.config, args.checkpoint, args.out)
    print(f'student checkpoint: {args.out}\nstudent config: {cfg_out}')


if __name__ == '__main__':
    main()
