"""DigitsSeg and DigitsCls: layout, labels, tuning split, mmseg, mmpretrain."""
import os
import os.path as osp

import numpy as np
import pytest
from utils import _png, _read
from PIL import Image

from mmkdflow.datasets import (DIGITS_CLASSES, DIGITS_SEG_CLASSES,
                               DIGITS_SEG_METAINFO, build_digits_cls,
                               build_digits_seg, holdout_split,
                               load_source_digits, read_marker,
                               split_source_indices)

SEG_KW = dict(num_train=40, num_val=10)


@pytest.fixture(scope='module')
def seg_root(tmp_path_factory):
    return build_digits_seg(tmp_path_factory.mktemp('seg') / 'digits_seg',
                            seed=0, **SEG_KW)


@pytest.fixture(scope='module')
def cls_root(tmp_path_factory):
    return build_digits_cls(tmp_path_factory.mktemp('cls') / 'digits_cls',
                            seed=0)


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
