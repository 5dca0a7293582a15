"""tools/visualize_features.py: the saliency math and the tool on tiny
distiller checkpoints (one saved directly, one trained by the Runner)."""
import math

import numpy as np
import pytest
import torch
from utils import config_path, tiny_retinanet
from utils.e2e import load_tool, run_tool, shrink
from mmengine.config import Config

from mmkdflow.engine.checkpoint import load_checkpoint_file
from mmkdflow_tools.visualization import (DPI, PANEL_ASPECT, PANEL_INCHES,
                                          map_to_image, render_panels,
                                          saliency_map)

PNG_SIZE = (round(PANEL_ASPECT * PANEL_INCHES * DPI),
            round(3 * PANEL_INCHES * DPI))


def png_shape(path):
    import matplotlib.image
    return matplotlib.image.imread(path).shape


# ---------------------------------------------------------------- math
def test_saliency_map_matches_the_closed_form():
    torch.manual_seed(0)
    feat = torch.randn(5, 3, 4)
    tau = 0.5
    got = saliency_map(feat, tau)
    x = feat.double().numpy()
    mean = x.mean(axis=0)
    expected = 12 * np.exp(mean / tau) / np.exp(mean / tau).sum()
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    assert got.dtype == torch.float32
    assert float(got.mean()) == pytest.approx(1.0, rel=1e-6)
    # one position far above the rest takes (almost) all of H*W
    spike = torch.zeros(2, 3, 4)
    spike[:, 1, 2] = 10.0
    assert float(saliency_map(spike)[1, 2]) == pytest.approx(12, rel=1e-6)
    # a constant map is uniform; batches are maps of their own
    assert torch.allclose(saliency_map(torch.ones(3, 2, 2)),
                          torch.ones(2, 2))
    batch = torch.stack([feat, 2 * feat])
    torch.testing.assert_close(saliency_map(batch, tau)[0], got)
    torch.testing.assert_close(saliency_map(batch, tau)[1],
                               saliency_map(feat, tau / 2))


def test_saliency_map_rejects_bad_input():
    with pytest.raises(ValueError, match='spatial'):
        saliency_map(torch.randn(2, 10))
    with pytest.raises(ValueError, match='temperature'):
        saliency_map(torch.randn(3, 2, 2), 0.0)


def test_map_to_image_crops_the_padding():
    # 2 x 3 map of a 32 x 48 padded input whose image is 32 x 24 (left half)
    sal = torch.tensor([[1.0, 1.0, 5.0], [1.0, 1.0, 5.0]])
    out = map_to_image(sal, (32, 48), (32, 24), (64, 48))
    assert out.shape == (64, 48)
    assert out.max() < 5.0  # the hot padding column is cropped away
    assert math.isclose(float(out.min()), 1.0, rel_tol=1e-6)


def test_render_panels_writes_one_panel_per_map(tmp_path):
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    maps = [np.random.rand(20, 30) for _ in range(3)]
    out = str(tmp_path / 'h.png')
    size = render_panels(image, maps, ['a', 'b', 'c'], out)
    assert size == PNG_SIZE
    assert png_shape(out)[:2] == PNG_SIZE


# ------------------------------------------------------------- the tool
def distill_config(tmp_path, connector: dict, replace: bool) -> Config:
    """A tiny DigitsDet distiller config on small data in ``tmp_path``."""
    demo = 'pkd_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det.py'
    cfg = shrink(Config.fromfile(config_path('demo', demo)), 'det',
                 str(tmp_path / 'digits_det'), str(tmp_path / 'work'))
    cfg.model.student = tiny_retinanet(8, 16)
    cfg.model.teacher = tiny_retinanet(16, 32)
    cfg.model.teacher_ckpt = None
    cfg.model.allow_random_teacher = True
    cfg.model.distill_points = dict(fpn=dict(
        student='neck', teacher='neck', index=(0, 1, 2, 3, 4),
        replace=replace, connector=connector))
    return cfg


def test_tool_on_a_saved_fmkt_checkpoint(tmp_path):
    import mmcv
    from mmengine.registry import MODELS
    cfg = distill_config(tmp_path, dict(
        type='FMKTFeatureConnector', channels=16, meta_encoder='convnext',
        num_steps=2, teacher_proj=32), replace=True)
    cfg_file = str(tmp_path / 'fmkt.py')
    cfg.dump(cfg_file)
    model = MODELS.build(Config.fromfile(cfg_file).model)
    # an untrained flow leaves the channel mean alone (its velocity is about
    # a LayerNorm, of zero channel mean): give it weights that do not
    torch.manual_seed(0)
    for param in model.connectors.parameters():
        param.data.normal_(0.0, 0.5)
    ckpt = str(tmp_path / 'fmkt.pth')
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, ckpt)
    image = str(tmp_path / 'img.png')
    mmcv.imwrite(np.random.RandomState(0).randint(
        0, 255, (50, 70, 3)).astype(np.uint8), image)
    out = str(tmp_path / 'vis' / 'heat.png')
    tool = load_tool('visualize_features')
    result = tool.main([cfg_file, ckpt, '--image', image, '--level', '1',
                        '--out', out])
    assert png_shape(out)[:2] == PNG_SIZE == result['size']
    names = list(result['saliency'])
    assert names == ['student', 'FM-KT mean prediction (N=2)', 'teacher']
    for sal in result['saliency'].values():
        # level 1 (stride 16) of the 64 x 64 padded input (shrink resizes
        # the 50 x 70 image to 46 x 64)
        assert sal.shape == (4, 4)
        assert float(sal.mean()) == pytest.approx(1.0, rel=1e-5)
    assert not torch.allclose(result['saliency']['student'],
                              result['saliency'][names[1]])
    with pytest.raises(IndexError, match='level'):
        tool.main([cfg_file, ckpt, '--image', image, '--level', '5',
                   '--out', out])


@pytest.mark.slow
def test_tool_on_a_runner_trained_diffkd_checkpoint(tmp_path,
                                                    saved_teacher):
    from mmengine.runner import Runner
    cfg = distill_config(tmp_path, dict(
        type='DiffKDConnector', student_channels=16, teacher_channels=32,
        kd_loss=dict(type='MSELoss', loss_weight=5.0)), replace=False)
    # a teacher from a file: the Runner's checkpoint leaves it out and the
    # tool rebuilds it from teacher_ckpt, checking its hash
    cfg.model.teacher_ckpt, _ = saved_teacher(tiny_retinanet(16, 32))
    cfg.model.allow_random_teacher = False
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2,
                         val_interval=100)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2,
                                        by_epoch=False)
    cfg.log_processor = dict(by_epoch=False)
    cfg.custom_hooks = []
    cfg_file = str(tmp_path / 'diffkd.py')
    cfg.dump(cfg_file)
    Runner.from_cfg(Config.fromfile(cfg_file)).train()
    ckpt = str(tmp_path / 'work' / 'iter_2.pth')
    assert not [k for k in load_checkpoint_file(ckpt)['state_dict']
                if k.startswith('teacher.')]
    out = str(tmp_path / 'diffkd.png')
    # no --image: the first canvas of the config's val dataset
    printed = run_tool('tools/visualize_features.py', cfg_file, ckpt,
                       '--out', out)
    assert 'DiffKD denoised student' in printed
    assert 'digits_det/val/' in printed
    assert png_shape(out)[:2] == PNG_SIZE
    # the config now names another teacher: refused, naming the setting
    other, _ = saved_teacher(tiny_retinanet(16, 32), name='other.pth',
                             seed=7)
    cfg.model.teacher_ckpt = other
    cfg.dump(cfg_file)
    with pytest.raises(ValueError, match='teacher changed.*other.pth'):
        load_tool('visualize_features').main([cfg_file, ckpt, '--out', out])
