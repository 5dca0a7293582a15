"""Benchmark section f: a training checkpoint of a distiller config, with
the frozen teacher inside (the old format) and without it (today's)."""
import pytest
from utils import config_path, tiny_retinanet

from mmkdflow_tools.benchmark import (checkpoint_section,
                                      format_checkpoint_section)


def test_teacher_free_checkpoint_is_smaller_by_the_teacher():
    config = config_path('fmkt',
                         'fmkt_retinanet-x101_retinanet-r50_fpn_2x_coco.py')
    # the users' first config with tiny detectors: a minute's CPU less
    section = checkpoint_section(config, print, dict(
        student=tiny_retinanet(8, 16), teacher=tiny_retinanet(16, 32),
        distill_points=dict(fpn=dict(
            student='neck', teacher='neck', index=(0, 1, 2, 3, 4),
            replace=True, connector=dict(
                type='FMKTFeatureConnector', channels=16, teacher_proj=32,
                meta_encoder='convnext', num_steps=2,
                level_weights=[1.0, 1.0, 1.0, 1.0, 0.0],
                distance=dict(type='PKDLoss'))))))
    assert section['teacher_keys_left'] == 0
    # the difference is the teacher's weights (give or take the per-entry
    # overhead of the zip archive)
    saved = section['with_teacher_mb'] - section['without_teacher_mb']
    assert saved == pytest.approx(section['teacher_mb'], rel=0.2)
    assert section['ratio'] < 1
    lines = format_checkpoint_section(section)
    assert f"{section['without_teacher_mb']:.0f} MB" in lines[-1]
