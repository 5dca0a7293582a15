"""DigitsDet: COCO layout, boxes, sources, caching, pycocotools and mmdet."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from utils import _png, _read

from mmkdflow.datasets import (DIGITS_CLASSES, MARKER_NAME, build_digits_det,
                               build_digits_seg, holdout_split,
                               load_source_digits, read_marker,
                               split_source_indices)

DET_KW = dict(num_train=20, num_val=10)


def _load_json(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


@pytest.fixture(scope='module')
def det_root(digits_det):
    return digits_det(**DET_KW)


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
