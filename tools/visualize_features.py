"""Saliency heatmaps of the student, refined student and teacher features.

    python tools/visualize_features.py CONFIG CHECKPOINT \\
        [--image IMG] [--level K] [--point NAME] [--out heatmaps.png]

Loads a distiller checkpoint, runs teacher and student on one image (by
default image ``--index`` of the config's test/val dataset, e.g. a digits
demo canvas) and renders, for FPN level ``K`` of distillation point
``NAME`` (or segmentation logits, level 0), three saliency maps over the
image, side by side: the student feature, the refined student feature
(DiffKD: the denoised latent; FM-KT: the flow's mean prediction) and the
teacher feature. Saliency is the DiffKD paper's Figure 2 map: the channel
mean, softmax over all positions with temperature 0.5, times H*W
(:func:`mmkdflow_tools.visualization.saliency_map`).
"""
import argparse
import os
import os.path as osp

os.environ.setdefault('MPLBACKEND', 'Agg')

from mmengine.config import Config, DictAction  # noqa: E402

import mmkdflow  # noqa: E402,F401
from mmkdflow_tools.visualization import (collect_features,  # noqa: E402
                                          dataset_image, load_distiller,
                                          map_to_image, pick_point,
                                          prepare_image, render_panels,
                                          saliency_map)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Render student / refined student / teacher feature '
        'saliency of a distiller checkpoint on one image')
    parser.add_argument('config', help='the distillation config')
    parser.add_argument('checkpoint', help='a checkpoint of the distiller')
    parser.add_argument('--image', help='image file (default: image --index '
                        "of the config's test/val dataset)")
    parser.add_argument('--index', type=int, default=0,
                        help='dataset image used when --image is omitted')
    parser.add_argument('--level', type=int, default=0,
                        help="entry of the point's tensors (FPN level)")
    parser.add_argument('--point', help='distillation point (default: the '
                        'first one reading the teacher)')
    parser.add_argument('--out', default='heatmaps.png', help='PNG to write')
    parser.add_argument('--temperature', type=float, default=0.5)
    parser.add_argument('--alpha', type=float, default=0.5,
                        help='opacity of the heatmaps over the image')
    parser.add_argument('--own-scale', action='store_true',
                        help='one colour scale per panel (default: shared)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the DiffKD start noise')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries (key=value)')
    return parser


def visualize(args: argparse.Namespace) -> dict:
    """Render the PNG; return the saliency maps and the panel titles."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = load_distiller(cfg, args.checkpoint, args.device)
    point = pick_point(model, args.point)
    image_path = args.image or dataset_image(cfg, args.index)
    data, image = prepare_image(cfg, image_path)
    feats = collect_features(model, data, point, args.level, args.seed)
    meta = feats.meta
    input_shape = tuple(meta['batch_input_shape'])
    img_shape = tuple(meta['img_shape'][:2]) if 'img_shape' in meta \
        else None
    named = [('student', feats.student), (feats.refined_name, feats.refined),
             ('teacher', feats.teacher)]
    maps, titles, raw = [], [], {}
    for name, feat in named:
        saliency = saliency_map(feat, args.temperature)
        raw[name] = saliency
        maps.append(map_to_image(saliency, input_shape, img_shape,
                                 image.shape[:2]))
        titles.append(f'{name}\n{tuple(feat.shape)}, peak '
                      f'{float(saliency.max()):.1f}')
    out_dir = osp.dirname(args.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    size = render_panels(image, maps, titles, args.out, args.alpha,
                         shared_scale=not args.own_scale)
    return dict(image=image_path, point=point.name, level=args.level,
                titles=titles, saliency=raw, size=size)


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    result = visualize(args)
    print(f"point {result['point']!r}, level {result['level']}, image "
          f"{result['image']}")
    for title in result['titles']:
        print('  ' + title.replace('\n', ': '))
    print(f"heatmaps ({result['size'][1]}x{result['size'][0]} px) written "
          f'to {args.out}')
    return result


if __name__ == '__main__':
    main()
