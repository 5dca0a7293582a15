"""What the stronger-teacher recipes must say: DiffKD's Table 3 rows with
strategies B2 / B3 (Table 1), and FM-KT's released DeiT recipe with ViTKD.
(That each one builds and trains a step: test_configs.py.)"""
import copy

import pytest
import torch
from utils import config_path, tiny_resnet_cls
from mmengine.config import Config

TABLE_3 = {
    # config: (student, teacher, student channels, teacher channels, AE)
    'diffkd_resnet50-rsb-a1_resnet34_8xb96-b2-450e_in1k.py':
    ('resnet34', 'rsb-a1', 512, 2048, 1024),
    'diffkd_resnet50-rsb-a1_mobilenet-v2_8xb96-b2-450e_in1k.py':
    ('mobilenet-v2', 'rsb-a1', 1280, 2048, 1024),
    'diffkd_resnet50-rsb-a1_efficientnet-b0_8xb96-b2-450e_in1k.py':
    ('efficientnet-b0', 'rsb-a1', 1280, 2048, 1024),
    'diffkd_swin-l_resnet50_8xb96-b2-450e_in1k.py':
    ('resnet50', 'swin-large', 2048, 1536, 768),
    'diffkd_swin-l_swin-t_8xb128-b3-300e_in1k.py':
    ('swin-tiny', 'swin-large', 768, 1536, 768),
}
LABEL_SMOOTH = dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                    mode='original')


def load(name: str) -> Config:
    return Config.fromfile(config_path('diffkd', name))


@pytest.mark.parametrize('name', sorted(TABLE_3))
def test_table3_row_reads_the_papers_points(name):
    student, teacher, s_ch, t_ch, ae = TABLE_3[name]
    cfg = load(name)
    model = cfg.model
    assert student in model.student.cfg_path
    assert teacher in model.teacher.cfg_path
    feat = model.distill_points.feat
    assert (feat.student, feat.teacher, feat.index) == (
        'backbone', 'backbone', 0)
    conn = feat.connector
    assert (conn.student_channels, conn.teacher_channels, conn.ae_channels,
            conn.use_ae) == (s_ch, t_ch, ae, True)
    logits = model.distill_points.logits
    assert logits.connector.form == 'vector'
    assert logits.connector.kd_loss.type == 'KDLoss'
    assert model.student.head.loss == LABEL_SMOOTH
    assert cfg.default_scope == 'mmpretrain'


@pytest.mark.parametrize('name', sorted(
    n for n in TABLE_3 if '-b2-' in n))
def test_strategy_b2(name):
    cfg = load(name)
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.weight_decay) == ('RMSprop', 0.048, 1e-5)
    assert cfg.train_dataloader.batch_size * 8 == 768
    assert cfg.train_cfg.max_epochs == 450
    sched = cfg.param_scheduler
    assert sched.type == 'MultiStepLR' and sched.gamma == 0.97
    # timm's lr * 0.97 ** floor(epoch / 2.4)
    expected = [e for e in range(1, 450) if e // 2.4 > (e - 1) // 2.4]
    assert sched.milestones == expected
    assert sched.milestones[:6] == [3, 5, 8, 10, 12, 15]
    assert len(sched.milestones) == int(449 / 2.4)
    steps = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert steps == ['LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip',
                     'RandAugment', 'RandomErasing', 'PackInputs']
    ema = [h for h in cfg.custom_hooks if h.type == 'EMAHook']
    assert len(ema) == 1 and ema[0].momentum == 1e-4  # decay 0.9999
    types = [h.type for h in cfg.custom_hooks]
    assert types[:2] == ['mmkdflow.SafeTrainingHook',
                         'mmkdflow.ResumeStateHook']
    assert 'mmkdflow.StudentCheckpointHook' in types


def test_strategy_b3():
    cfg = load('diffkd_swin-l_swin-t_8xb128-b3-300e_in1k.py')
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.weight_decay) == ('AdamW', 5e-4, 0.05)
    assert cfg.train_dataloader.batch_size * 8 == 1024
    assert cfg.train_cfg.max_epochs == 300
    assert cfg.param_scheduler[-1].type == 'CosineAnnealingLR'
    steps = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert {'ColorJitter', 'RandAugment', 'RandomErasing'} <= set(steps)
    augments = [a.type for a in cfg.model.student.train_cfg.augments]
    assert augments == ['Mixup', 'CutMix']
    assert not any(h.type == 'EMAHook' for h in cfg.custom_hooks)


def test_ema_hook_averages_a_distiller():
    """B2's EMAHook copies the whole distiller (MMEngine's
    ExponentialMovingAverage); the copy updates and keeps the teacher
    frozen."""
    from mmengine.model import ExponentialMovingAverage

    from mmkdflow.models import Distiller
    model = Distiller(
        student=tiny_resnet_cls(8), teacher=tiny_resnet_cls(8),
        allow_random_teacher=True,
        distill_points=dict(feat=dict(
            student='backbone', teacher='backbone',
            loss=dict(type='MSELoss'))))
    ema = ExponentialMovingAverage(model, momentum=0.5)
    before = copy.deepcopy(ema.module.student.state_dict())
    for _ in range(2):  # the first update copies, the second averages
        with torch.no_grad():
            for p in model.student.parameters():
                p.add_(1.)
        ema.update_parameters(model)
    after = ema.module.student.state_dict()
    key = next(k for k in after if k.endswith('conv1.weight'))
    assert torch.allclose(after[key], before[key] + 1.5)
    assert not any(p.requires_grad for p in ema.module.teacher.parameters())
    model.remove_hooks()


def test_deit_recipe_is_the_released_one():
    cfg = Config.fromfile(config_path(
        'fmkt', 'fmkt_deit3-small_deit-tiny_4xb256_in1k.py'))
    points = cfg.model.distill_points
    flow = points.flow
    assert (flow.student, flow.student_index, flow.teacher, flow.replace) \
        == ('backbone', -1, 'head.layers.head', 'head.layers.head')
    conn = flow.connector
    assert conn.type == 'FMKTLogitConnector' and conn.channels == 192
    assert conn.meta_encoder == dict(type='mlp', num_blocks=2)
    assert (conn.num_steps, conn.num_steps_test) == (8, 8)
    assert conn.distance == dict(type='DISTLoss', beta=2.0, gamma=2.0,
                                 tau=1.0)
    assert cfg.model.student_loss_weight == 0.0
    reads = {name: (p.student, p.loss.mode, p.loss.loss_weight)
             for name, p in points.items() if name != 'flow'}
    assert reads == {
        'vitkd_mimic0': ('backbone.layers.0', 'mimic', 3e-5),
        'vitkd_mimic1': ('backbone.layers.1', 'mimic', 3e-5),
        'vitkd_gen': ('backbone.ln1', 'generate', 3e-6)}
    assert points.vitkd_gen.loss.mask_ratio == 0.5
    assert 'deit3-small-p16_in21k-pre' in cfg.model.teacher_ckpt
