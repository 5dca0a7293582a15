"""The command-line tools on the demo configs (tiny runs)."""
import os
import os.path as osp

import pytest
import torch
from utils import config_path, tiny_retinanet
from utils.e2e import run_tool

from mmkdflow.engine.checkpoint import load_checkpoint_file
from mmkdflow.engine import AutocastOptimWrapper
from mmkdflow.registry import OPTIM_WRAPPERS


def test_autocast_optim_wrapper_runs_forward_in_bf16():
    layer = torch.nn.Linear(4, 3)
    wrapper = OPTIM_WRAPPERS.build(dict(
        _scope_='mmkdflow', type='AutocastOptimWrapper',
        optimizer=torch.optim.SGD(layer.parameters(), lr=0.1)))
    assert isinstance(wrapper, AutocastOptimWrapper)
    with wrapper.optim_context(layer):
        out = layer(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().sum())
    assert layer.weight.dtype == torch.float32
    with pytest.raises(ValueError, match="dtype must be 'bfloat16'"):
        AutocastOptimWrapper(torch.optim.SGD(layer.parameters(), lr=0.1),
                             dtype='int8')


@pytest.mark.slow
def test_train_and_test_tools_with_amp_and_teacher_flag(tmp_path):
    data_root = str(tmp_path / 'digits_det')
    options = [
        f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        f'val_evaluator.ann_file={data_root}/annotations/val.json',
        f'test_evaluator.ann_file={data_root}/annotations/val.json',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        'train_dataloader.batch_size=4', 'train_cfg.max_epochs=1',
        'default_hooks.checkpoint.interval=1', 'param_scheduler=[]',
    ]
    for split in ('train', 'val', 'test'):
        options += [
            f'{split}_dataloader.dataset.digits_options.num_train=8',
            f'{split}_dataloader.dataset.digits_options.num_val=4',
            f'{split}_dataloader.dataset.digits_options.image_size=64']
    work_dir = str(tmp_path / 'work')
    model = tiny_retinanet(8, 16)
    model['test_cfg']['score_thr'] = 0.0  # random weights: keep boxes
    cfg = str(tmp_path / 'tiny_pkd.py')
    demo = 'pkd_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det.py'
    with open(cfg, 'w') as f:
        f.write(
            f"_base_ = [{config_path('demo', demo)!r}]\n"
            f'model = dict(\n'
            f'    student=dict(_delete_=True, **{model!r}),\n'
            f'    teacher=dict(_delete_=True, **{model!r}),\n'
            f'    teacher_ckpt=None, allow_random_teacher=True,\n'
            f'    distill_points=dict(fpn=dict(connector=dict(\n'
            f'        in_channels=16, out_channels=16))))\n')
    printed = run_tool('tools/train.py', cfg, '--work-dir', work_dir,
                       '--amp', '--cfg-options', *options)
    # --amp sets the config key; the config's SafeTrainingHook guards it
    assert ('SafeTrainingHook: CheckpointHook saves atomically; '
            'EpochBasedTrainLoop resumes inside an epoch; '
            'AutocastOptimWrapper guarded against NaN/Inf '
            "(nonfinite='raise')") in printed
    assert 'mmkdflow tools:' not in printed
    ckpt = osp.join(work_dir, 'epoch_1.pth')
    state = load_checkpoint_file(ckpt)
    assert state['meta']['epoch'] == 1
    assert 'optimizer' in state
    dumped = open(osp.join(work_dir, osp.basename(cfg))).read()
    assert 'AutocastOptimWrapper' in dumped
    dump = str(tmp_path / 'predictions.pkl')
    show_dir = str(tmp_path / 'shown')
    out = run_tool('tools/test.py', cfg, ckpt, '--work-dir', work_dir,
                   '--teacher', '--out', dump, '--show-dir', show_dir,
                   '--cfg-options', *options)
    assert 'evaluating the teacher' in out
    assert 'coco/bbox_mAP:' in out
    import pickle
    with open(dump, 'rb') as f:
        predictions = pickle.load(f)  # our own file, written just now
    assert len(predictions) == 4 and 'pred_instances' in predictions[0]
    assert len([f for f in os.listdir(show_dir) if f.endswith('.png')]) == 4


def test_shared_tool_setup(tmp_path, monkeypatch):
    """tools/train.py and tools/test.py share mmkdflow.engine's tool
    set-up: work dir default, --cfg-options, --amp per device, --resume,
    and the ResumeStateHook every training run gets."""
    import argparse

    from mmkdflow.engine import (optim_setup, resume_setup, test_setup,
                                 tool_args)
    monkeypatch.setenv('LOCAL_RANK', '0')
    demo = 'pkd_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det.py'
    config = config_path('demo', demo)
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    tool_args.add_common_args(parser)
    args = tool_args.parse_args(parser, [config, '--cfg-options',
                                  'train_cfg.max_epochs=2'])
    cfg = tool_args.load_config(args)
    assert cfg.work_dir == osp.join(
        './work_dirs',
        'pkd_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det')
    assert cfg.train_cfg.max_epochs == 2 and cfg.launcher == 'none'

    optim_setup.apply_amp(cfg, cuda=True)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    cfg.optim_wrapper.type = 'OptimWrapper'
    optim_setup.apply_amp(cfg, cuda=False)
    assert cfg.optim_wrapper.type == 'mmkdflow.AutocastOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    cfg.optim_wrapper.type = 'mmpretrain.SomeOtherWrapper'
    with pytest.raises(ValueError, match='--amp works with OptimWrapper'):
        optim_setup.apply_amp(cfg)

    cfg.auto_scale_lr = dict(enable=False, base_batch_size=16)  # mmdet's
    optim_setup.apply_auto_scale_lr(cfg)
    assert cfg.auto_scale_lr.enable
    cfg.auto_scale_lr = None
    with pytest.raises(ValueError, match='--auto-scale-lr needs '
                       'auto_scale_lr.base_batch_size'):
        optim_setup.apply_auto_scale_lr(cfg)

    test_setup.apply_out(cfg, 'preds.pkl')
    assert cfg.test_evaluator[-1] == dict(type='mmdet.DumpDetResults',
                                          out_file_path='preds.pkl')
    with pytest.raises(ValueError, match='--out must name a .pkl'):
        test_setup.apply_out(cfg, 'preds.json')
    test_setup.apply_show_dir(cfg, 'vis')
    hook = cfg.default_hooks.visualization
    assert hook.draw and hook.test_out_dir == 'vis'
    cfg.default_hooks.visualization = dict(type='SegVisualizationHook')
    cfg.visualizer = dict(type='SegLocalVisualizer')
    test_setup.apply_show_dir(cfg, 'seg_vis')
    assert cfg.default_hooks.visualization.draw
    assert cfg.visualizer.save_dir == 'seg_vis'
    cfg.default_hooks.visualization = dict(type='VisualizationHook')
    test_setup.apply_show_dir(cfg, 'cls_vis')
    assert cfg.default_hooks.visualization == dict(
        type='VisualizationHook', enable=True, out_dir='cls_vis')
    cfg.default_hooks.pop('visualization')
    with pytest.raises(ValueError, match='--show-dir needs '
                       'default_hooks.visualization'):
        test_setup.apply_show_dir(cfg, 'vis')

    resume_setup.apply_resume(cfg, None)
    assert not cfg.resume
    resume_setup.apply_resume(cfg, '~/epoch_1.pth')
    assert cfg.resume and cfg.load_from == osp.expanduser('~/epoch_1.pth')
    resume_setup.apply_resume(cfg, 'auto')  # mmdet's: MMEngine finds it
    assert cfg.resume and cfg.load_from is None

    # the guarantees come from the config, not from the tools
    names = [h['type'] for h in cfg.custom_hooks]
    assert names == ['mmkdflow.SafeTrainingHook', 'mmkdflow.ResumeStateHook',
                     'mmkdflow.StudentCheckpointHook']


def test_random_states_round_trip_through_safe_loading(tmp_path):
    import random

    import numpy as np

    from mmkdflow.engine.checkpoint.resume_state_hook import (
        capture_random_states, restore_random_states)
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    np.random.randn()  # a cached gaussian in numpy's state
    path = str(tmp_path / 'states.pth')
    torch.save({'random_states': capture_random_states()}, path)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    states = torch.load(path, weights_only=True)['random_states']
    restore_random_states(states)
    got = (torch.rand(3), np.random.rand(3), random.random())
    torch.testing.assert_close(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[2] == expected[2]
