"""Tests of the embedded digits datasets (mmkdflow.datasets).

Small sizes keep the file fast; the downstream-reader tests build the
datasets with mmdet / mmseg / mmpretrain / pycocotools exactly as a config
would (all four are hard dependencies: a broken install fails, it does not
skip).
"""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mmkdflow.datasets import (DIGITS_CLASSES, DIGITS_SEG_CLASSES,
                               DIGITS_SEG_METAINFO, MARKER_NAME,
                               build_digits_cls, build_digits_det,
                               build_digits_seg, holdout_split,
                               load_source_digits, prepare_digits,
                               read_marker, split_source_indices)
from mmkdflow.datasets._canvas import mask_bbox, render_canvas
from mmkdflow.datasets._source import stream_rng

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DET_KW = dict(num_train=20, num_val=10)
SEG_KW = dict(num_train=40, num_val=10)


def _read(path):
    with open(path, 'rb') as f:
        return f.read()


def _load_json(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _png(path):
    return np.asarray(Image.open(path))


@pytest.fixture(scope='module')
def det_root(digits_det):
    return digits_det(**DET_KW)


@pytest.fixture(scope='module')
def seg_root(tmp_path_factory):
    return build_digits_seg(tmp_path_factory.mktemp('seg') / 'digits_seg',
                            seed=0, **SEG_KW)


@pytest.fixture(scope='module')
def cls_root(tmp_path_factory):
    return build_digits_cls(tmp_path_factory.mktemp('cls') / 'digits_cls',
                            seed=0)


# ------------------------------------------------------------ source split
def test_source_digits_and_split():
    images, targets = load_source_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert set(targets.tolist()) == set(range(10))
    train, val = split_source_indices(0)
    assert len(train) == 1437 and len(val) == 360
    assert not set(train.tolist()) & set(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(1797))
    train1, _ = split_source_indices(1)
    assert not np.array_equal(train, train1)
    np.testing.assert_array_equal(train, split_source_indices(0)[0])


def test_render_canvas_boxes_are_tight_stroke_boxes():
    pool = split_source_indices(0)[0]
    rng = stream_rng(123, 9)
    checked = 0
    for _ in range(20):
        image, label, instances = render_canvas(rng, pool, 128)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert 1 <= len(instances) <= 4
        for i, inst in enumerate(instances):
            others = [o['bbox'] for j, o in enumerate(instances) if j != i]
            x0, y0, x1, y1 = inst['bbox']
            assert 0 <= x0 <= x1 < 128 and 0 <= y0 <= y1 < 128
            overlaps = any(
                min(x1, o[2]) >= max(x0, o[0]) and
                min(y1, o[3]) >= max(y0, o[1]) for o in others)
            if overlaps:
                continue
            # unoccluded digit: its label pixels span exactly its box
            own = np.zeros_like(label, dtype=bool)
            own[y0:y1 + 1, x0:x1 + 1] = \
                label[y0:y1 + 1, x0:x1 + 1] == inst['digit'] + 1
            assert mask_bbox(own) == (x0, y0, x1, y1)
            assert own.sum() == inst['stroke_area']
            checked += 1
    assert checked > 10


# -------------------------------------------------------------- detection
def test_det_layout_ids_and_boxes(det_root):
    for split, n in (('train', 20), ('val', 10)):
        coco = _load_json(osp.join(det_root, 'annotations', f'{split}.json'))
        assert [c['id'] for c in coco['categories']] == list(range(1, 11))
        assert [c['name'] for c in coco['categories']] == list(DIGITS_CLASSES)
        img_ids = [im['id'] for im in coco['images']]
        assert img_ids == list(range(1, n + 1))
        ann_ids = [a['id'] for a in coco['annotations']]
        assert min(ann_ids) == 1 and len(set(ann_ids)) == len(ann_ids)
        assert len(ann_ids) >= n
        by_image = {}
        for ann in coco['annotations']:
            assert ann['image_id'] in img_ids
            assert 1 <= ann['category_id'] <= 10
            assert ann['iscrowd'] == 0
            x, y, w, h = ann['bbox']
            assert w > 0 and h > 0 and ann['area'] == w * h
            assert x >= 0 and y >= 0 and x + w <= 128 and y + h <= 128
            by_image.setdefault(ann['image_id'], []).append(ann)
        assert set(by_image) == set(img_ids)  # 1..4 digits on every canvas
        assert all(1 <= len(v) <= 4 for v in by_image.values())
        for im in coco['images']:
            arr = _png(osp.join(det_root, split, im['file_name']))
            assert arr.shape == (im['height'], im['width'], 3)
            assert arr.dtype == np.uint8


def test_det_boxes_enclose_bright_pixels(det_root):
    coco = _load_json(osp.join(det_root, 'annotations', 'val.json'))
    for im in coco['images'][:5]:
        img = _png(osp.join(det_root, 'val', im['file_name'])).astype(float)
        anns = [a for a in coco['annotations'] if a['image_id'] == im['id']]
        in_box = np.zeros(img.shape[:2], dtype=bool)
        for a in anns:
            x, y, w, h = map(int, a['bbox'])
            in_box[y:y + h, x:x + w] = True
        background = np.median(img[~in_box], axis=0)
        diff = np.abs(img - background).max(axis=2)
        # everything outside the boxes is background
        assert diff[~in_box].max() < 40
        for a in anns:
            x, y, w, h = map(int, a['bbox'])
            box = diff[y:y + h, x:x + w]
            # each edge (with a 1-pixel tolerance) holds bright stroke pixels
            assert box[:2].max() > 25 and box[-2:].max() > 25
            assert box[:, :2].max() > 25 and box[:, -2:].max() > 25
            assert box.max() > 80


def test_det_train_val_disjoint_sources(det_root):
    _, targets = load_source_digits()
    train_split, val_split = map(set, split_source_indices(0))
    sources = {}
    for split in ('train', 'val'):
        coco = _load_json(osp.join(det_root, 'annotations', f'{split}.json'))
        sources[split] = {a['source_index'] for a in coco['annotations']}
        for a in coco['annotations']:
            assert targets[a['source_index']] == a['category_id'] - 1
    assert not sources['train'] & sources['val']
    assert sources['train'] <= train_split and sources['val'] <= val_split


def test_tuning_split_is_disjoint_from_val_and_from_its_train():
    train, val = map(set, split_source_indices(0))
    tune_train, tune = map(set, holdout_split(0, holdout='tune'))
    assert tune and tune_train
    assert not tune & val and not tune_train & val  # never a val digit
    assert not tune & tune_train
    assert tune | tune_train == train
    assert len(tune) == round(0.2 * len(train))
    # the reported split is unchanged by the option
    assert [set(a) for a in holdout_split(0)] == [train, val]
    with pytest.raises(ValueError, match='holdout must be one of'):
        holdout_split(0, holdout='test')
    with pytest.raises(ValueError, match='tune_fraction'):
        holdout_split(0, holdout='tune', tune_fraction=1.0)


def test_det_tuning_split_sources(tmp_path):
    """A tuning build's val canvases hold only tuning digits, its train
    canvases only the other train digits: no reported val digit anywhere."""
    root = build_digits_det(tmp_path / 'tune', seed=0, holdout='tune',
                            **DET_KW)
    _, val = map(set, split_source_indices(0))
    tune_train, tune = map(set, holdout_split(0, holdout='tune'))
    sources = {}
    for split in ('train', 'val'):
        coco = _load_json(osp.join(root, 'annotations', f'{split}.json'))
        sources[split] = {a['source_index'] for a in coco['annotations']}
    assert sources['val'] <= tune and sources['train'] <= tune_train
    assert not (sources['val'] | sources['train']) & val
    assert read_marker(root)['params']['holdout'] == 'tune'


def test_seg_and_cls_tuning_split_sources(tmp_path):
    _, val = map(set, split_source_indices(0))
    tune_train, tune = holdout_split(0, holdout='tune')
    root = build_digits_cls(tmp_path / 'cls', seed=0, holdout='tune')
    for split, expected in (('train', tune_train), ('val', tune)):
        found = sorted(int(osp.splitext(f)[0]) for d in DIGITS_CLASSES
                       for f in os.listdir(osp.join(root, split, d)))
        assert found == expected.tolist()
        assert not set(found) & val
    seg = build_digits_seg(tmp_path / 'seg', seed=0, holdout='tune',
                           **SEG_KW)
    reported = build_digits_seg(tmp_path / 'seg_val', seed=0, **SEG_KW)
    # the tuning val canvases are other images than the reported ones
    assert _read(osp.join(seg, 'ann_dir', 'val', '000001.png')) != \
        _read(osp.join(reported, 'ann_dir', 'val', '000001.png'))
    assert 'holdout' not in read_marker(reported)['params']


def test_det_determinism(tmp_path):
    a = build_digits_det(tmp_path / 'a', seed=0, num_train=6, num_val=3)
    b = build_digits_det(tmp_path / 'b', seed=0, num_train=6, num_val=3)
    c = build_digits_det(tmp_path / 'c', seed=1, num_train=6, num_val=3)
    for rel in ('annotations/train.json', 'annotations/val.json',
                'train/000001.png', 'train/000006.png', 'val/000003.png',
                MARKER_NAME):
        assert _read(osp.join(a, rel)) == _read(osp.join(b, rel)), rel
    for rel in ('annotations/train.json', 'annotations/val.json',
                'train/000001.png', 'val/000001.png'):
        assert _read(osp.join(a, rel)) != _read(osp.join(c, rel)), rel
    assert sorted(os.listdir(a)) == sorted(
        [MARKER_NAME, 'annotations', 'train', 'val'])  # no staging leftovers


def test_det_cache_reuse_and_stale_rebuild(tmp_path):
    root = str(tmp_path / 'det')
    kw = dict(seed=0, num_train=4, num_val=2)
    assert build_digits_det(root, **kw) == root
    ann = osp.join(root, 'annotations', 'val.json')
    planted = osp.join(root, 'train', 'planted.txt')
    unrelated = osp.join(root, 'README.txt')
    for path in (planted, unrelated):
        with open(path, 'w') as f:
            f.write('x')
    old = os.stat(ann).st_mtime_ns
    os.utime(ann, ns=(old - 10**9, old - 10**9))
    old = os.stat(ann).st_mtime_ns
    # identical parameters: nothing is rewritten
    build_digits_det(root, **kw)
    assert osp.exists(planted) and os.stat(ann).st_mtime_ns == old
    # stale marker (other parameters recorded): rebuilt from scratch
    marker = _load_json(osp.join(root, MARKER_NAME))
    marker['params']['seed'] = 5
    with open(osp.join(root, MARKER_NAME), 'w') as f:
        json.dump(marker, f)
    build_digits_det(root, **kw)
    assert not osp.exists(planted) and os.stat(ann).st_mtime_ns != old
    assert osp.exists(unrelated)  # files the builder does not own stay
    assert read_marker(root)['params']['seed'] == 0
    # missing marker (interrupted build): rebuilt
    with open(planted, 'w') as f:
        f.write('x')
    os.remove(osp.join(root, MARKER_NAME))
    build_digits_det(root, **kw)
    assert not osp.exists(planted) and read_marker(root) is not None
    # other parameters: rebuilt with them
    build_digits_det(root, seed=0, num_train=4, num_val=3)
    assert len(_load_json(ann)['images']) == 3
    assert read_marker(root)['sizes']['val_images'] == 3
    # a folder built by another builder: its files are replaced
    build_digits_seg(root, seed=0, num_train=2, num_val=1)
    assert sorted(os.listdir(root)) == sorted(
        [MARKER_NAME, 'README.txt', 'ann_dir', 'img_dir'])
    assert read_marker(root)['builder'] == 'digits_seg'


def test_pycocotools_gt_as_detections_gives_ap_1(det_root):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = COCO(osp.join(det_root, 'annotations', 'val.json'))
    assert len(gt.getImgIds()) == 10 and len(gt.getCatIds()) == 10
    dets = [
        dict(image_id=a['image_id'], category_id=a['category_id'],
             bbox=a['bbox'], score=1.0) for a in gt.dataset['annotations']
    ]
    evaluator = COCOeval(gt, gt.loadRes(dets), 'bbox')
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)  # AP@[.5:.95]
    assert evaluator.stats[1] == pytest.approx(1.0)  # AP@.5


def test_mmdet_coco_dataset_reads_det(det_root):
    from mmengine.registry import DefaultScope
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    coco = _load_json(osp.join(det_root, 'annotations', 'val.json'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(
            dict(type='CocoDataset', data_root=det_root,
                 ann_file='annotations/val.json', data_prefix=dict(img='val/'),
                 metainfo=dict(classes=DIGITS_CLASSES),
                 filter_cfg=dict(filter_empty_gt=True, min_size=4),
                 pipeline=[
                     dict(type='LoadImageFromFile'),
                     dict(type='LoadAnnotations', with_bbox=True)
                 ]))
        assert len(dataset) == 10
        assert dataset.metainfo['classes'] == DIGITS_CLASSES
        for idx in range(len(dataset)):
            item = dataset[idx]
            image_id = item['img_id']
            anns = [a for a in coco['annotations']
                    if a['image_id'] == image_id]
            assert item['img'].shape == (128, 128, 3)
            expected = np.array([[x, y, x + w, y + h]
                                 for x, y, w, h in (a['bbox'] for a in anns)])
            np.testing.assert_allclose(item['gt_bboxes'].tensor.numpy(),
                                       expected)
            np.testing.assert_array_equal(
                item['gt_bboxes_labels'],
                [a['category_id'] - 1 for a in anns])
            assert not item['gt_ignore_flags'].any()


# ----------------------------------------------------------- segmentation
def test_seg_labels(seg_root):
    present = set()
    for split, n in (('train', 40), ('val', 10)):
        names = sorted(os.listdir(osp.join(seg_root, 'img_dir', split)))
        assert names == [f'{i:06d}.png' for i in range(1, n + 1)]
        assert names == sorted(
            os.listdir(osp.join(seg_root, 'ann_dir', split)))
        for name in names[:10]:
            img = _png(osp.join(seg_root, 'img_dir', split, name))
            lab_img = Image.open(osp.join(seg_root, 'ann_dir', split, name))
            assert lab_img.mode == 'L'
            lab = np.asarray(lab_img)
            assert img.shape == (128, 128, 3) and lab.shape == (128, 128)
            assert lab.dtype == np.uint8 and lab.max() <= 10
            assert (lab > 0).any()
            present |= set(np.unique(lab).tolist())
            # label pixels are the painted pixels
            img = img.astype(float)
            background = np.median(img[lab == 0], axis=0)
            diff = np.abs(img - background).max(axis=2)
            assert (diff[lab > 0] > 20).mean() > 0.95
            assert (diff[lab == 0] < 30).mean() > 0.999
        for name in names[10:]:
            lab = _png(osp.join(seg_root, 'ann_dir', split, name))
            present |= set(np.unique(lab).tolist())
    assert present == set(range(11))
    assert DIGITS_SEG_METAINFO['classes'] == DIGITS_SEG_CLASSES
    assert len(DIGITS_SEG_METAINFO['palette']) == 11


def test_seg_determinism(tmp_path, seg_root):
    a = build_digits_seg(tmp_path / 'a', seed=0, **SEG_KW)
    c = build_digits_seg(tmp_path / 'c', seed=3, num_train=2, num_val=1)
    for rel in ('img_dir/train/000001.png', 'ann_dir/train/000001.png',
                'img_dir/val/000010.png', 'ann_dir/val/000010.png'):
        assert _read(osp.join(a, rel)) == _read(osp.join(seg_root, rel))
    for rel in ('img_dir/train/000001.png', 'ann_dir/val/000001.png'):
        assert _read(osp.join(a, rel)) != _read(osp.join(c, rel))


def test_mmseg_base_seg_dataset_reads_seg(seg_root):
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset = DATASETS.build(
            dict(type='BaseSegDataset', data_root=seg_root,
                 data_prefix=dict(img_path='img_dir/val',
                                  seg_map_path='ann_dir/val'),
                 img_suffix='.png', seg_map_suffix='.png',
                 metainfo=DIGITS_SEG_METAINFO,
                 pipeline=[
                     dict(type='LoadImageFromFile'),
                     dict(type='LoadAnnotations')
                 ]))
        assert len(dataset) == 10
        assert tuple(dataset.metainfo['classes']) == DIGITS_SEG_CLASSES
        assert dataset.metainfo.get('label_map') is None
        for idx in (0, 9):
            item = dataset[idx]
            name = osp.basename(item['seg_map_path'])
            assert osp.basename(item['img_path']) == name
            expected = _png(osp.join(seg_root, 'ann_dir', 'val', name))
            np.testing.assert_array_equal(item['gt_seg_map'], expected)
            assert item['img'].shape == (128, 128, 3)


# --------------------------------------------------------- classification
def test_cls_layout_and_split(cls_root):
    _, targets = load_source_digits()
    train_split, val_split = split_source_indices(0)
    seen = {}
    for split, expected in (('train', train_split), ('val', val_split)):
        assert sorted(os.listdir(osp.join(cls_root, split))) == list(
            DIGITS_CLASSES)
        indices = []
        for name in DIGITS_CLASSES:
            for fname in os.listdir(osp.join(cls_root, split, name)):
                src = int(osp.splitext(fname)[0])
                assert targets[src] == int(name)
                indices.append(src)
        assert sorted(indices) == expected.tolist()
        seen[split] = set(indices)
    assert not seen['train'] & seen['val']
    img = _png(osp.join(cls_root, 'val', '3',
                        sorted(os.listdir(osp.join(cls_root, 'val', '3')))[0]))
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert read_marker(cls_root)['sizes'] == dict(
        train_images=1437, val_images=360)


def test_cls_determinism(tmp_path, cls_root):
    a = build_digits_cls(tmp_path / 'a', seed=0)
    b = build_digits_cls(tmp_path / 'b', seed=1)
    val_a = sorted(os.listdir(osp.join(a, 'val', '7')))
    for fname in val_a[:5]:
        rel = osp.join('val', '7', fname)
        assert _read(osp.join(a, rel)) == _read(osp.join(cls_root, rel))
    assert sorted(os.listdir(osp.join(b, 'val', '7'))) != val_a


def test_mmpretrain_custom_dataset_reads_cls(cls_root):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import DATASETS
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        for split, n in (('train', 1437), ('val', 360)):
            dataset = DATASETS.build(
                dict(type='CustomDataset', data_root=cls_root,
                     data_prefix=split,
                     pipeline=[dict(type='LoadImageFromFile')]))
            assert len(dataset) == n
            assert tuple(dataset.CLASSES) == DIGITS_CLASSES
            item = dataset[n - 1]
            assert item['img'].shape == (32, 32, 3)
            folder = osp.basename(osp.dirname(item['img_path']))
            assert int(item['gt_label']) == int(folder)


# ------------------------------------------------------------ entry points
def test_prepare_digits_and_cli(tmp_path, capsys):
    from mmkdflow.datasets.__main__ import main
    roots = prepare_digits(tmp_path, tasks=('det', 'seg'), seed=0,
                           det=dict(num_train=3, num_val=2),
                           seg=dict(num_train=2, num_val=1))
    assert roots == dict(det=osp.join(tmp_path, 'digits_det'),
                         seg=osp.join(tmp_path, 'digits_seg'))
    assert read_marker(roots['seg'])['builder'] == 'digits_seg'
    with pytest.raises(ValueError):
        prepare_digits(tmp_path, tasks=('depth', ))
    assert main(['--out', str(tmp_path), '--tasks', 'det', '--seed', '0',
                 '--num-train', '3', '--num-val', '2']) == 0
    out = capsys.readouterr().out
    assert osp.join(str(tmp_path), 'digits_det') in out
    assert 'train=3 images' in out and 'val=2 images' in out


def test_import_is_light():
    code = ('import sys, mmkdflow.datasets; '
            'heavy = [m for m in ("mmdet", "mmseg", "mmpretrain", "sklearn") '
            'if m in sys.modules]; '
            'assert not heavy, heavy')
    subprocess.run([sys.executable, '-c', code], cwd=REPO, check=True)
