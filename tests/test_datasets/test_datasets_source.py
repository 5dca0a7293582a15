"""Digits data: the source split, canvases, tuning split and entry points."""
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

from mmkdflow.datasets import (holdout_split, load_source_digits,
                               prepare_digits, read_marker,
                               split_source_indices)
from mmkdflow.datasets._canvas import mask_bbox, render_canvas
from mmkdflow.datasets._source import stream_rng

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


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
