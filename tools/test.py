"""Evaluate a distiller checkpoint (the student, by default).

``tools/dist_test.sh`` runs it with ``--launcher pytorch``; without a GPU it
uses the gloo backend (see :mod:`mmkdflow.distributed`).
"""
import argparse

import mmkdflow  # noqa: F401  registers mmkdflow's modules
from mmkdflow.engine.test_setup import apply_out, apply_show_dir
from mmkdflow.engine.tool_args import (add_common_args, build_runner,
                                       start_tool)
from mmkdflow.engine.checkpoint import check_checkpoint_file


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Test a distiller')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--teacher', action='store_true',
        help='evaluate the teacher instead of the student')
    parser.add_argument(
        '--out', help='dump every prediction to this .pkl file')
    parser.add_argument(
        '--show-dir', help='draw the predictions into this directory '
        '(relative: inside the run folder of the work dir)')
    add_common_args(parser)
    return parser


def main(argv=None) -> None:
    args, cfg = start_tool(build_parser(), argv)
    if args.teacher:
        cfg.model.predict_with = 'teacher'
        print('evaluating the teacher of the distiller (predict_with=teacher)')
    if args.out is not None:
        apply_out(cfg, args.out)
    if args.show_dir is not None:
        apply_show_dir(cfg, args.show_dir)
    check_checkpoint_file(args.checkpoint)
    cfg.load_from = args.checkpoint
    build_runner(cfg).test()


if __name__ == '__main__':
    main()
