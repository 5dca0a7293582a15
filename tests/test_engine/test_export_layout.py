"""The checkpoint layouts (one module owns them), what connectors and
datasets declare for the export without being built, and the runner
arguments the hooks read."""
import pytest
import torch
from utils import config_path
from mmengine.config import Config
from mmengine.model import BaseModel, ExponentialMovingAverage
from mmengine.registry import MODELS
from mmengine.runner import Runner

from mmkdflow.datasets import (DIGITS_CLS_METAINFO, DIGITS_METAINFO,
                               DIGITS_SEG_METAINFO)
from mmkdflow.engine.checkpoint.layout import (CONNECTOR_EMA_KEY,
                                               connector_weights,
                                               deploy_checkpoint,
                                               ema_connector_state,
                                               pack_connector_ema,
                                               student_checkpoint)
from mmkdflow.engine.runner_args import is_resuming, randomness_args
from mmkdflow.engine.student_export import (connector_identity_at_inference,
                                            deploy_points, student_config)
from mmkdflow.registry import DATASETS


def distiller_checkpoint(with_ema: bool) -> dict:
    """A distiller checkpoint with a student, a teacher and two connectors
    (``a``, ``b``); ``a``'s EMA when ``with_ema``."""
    state = {'student.backbone.w': torch.ones(2),
             'teacher.backbone.w': torch.zeros(2),
             'connectors.a.fc.weight': torch.full((2, 2), 1.),
             'connectors.b.fc.weight': torch.full((2, 2), 2.)}
    ckpt = {'meta': {'epoch': 3, 'iter': 30, 'seed': 7, 'config': 'x = 1',
                     'dataset_meta': {'classes': ('0', '1')}},
            'state_dict': state}
    if with_ema:
        averaged = torch.nn.ModuleDict(dict(a=torch.nn.Module()))
        averaged.a.fc = torch.nn.Linear(2, 2, bias=False)
        torch.nn.init.constant_(averaged.a.fc.weight, 5.)
        ema = ExponentialMovingAverage(averaged, momentum=0.5)
        ckpt[CONNECTOR_EMA_KEY] = pack_connector_ema(ema.state_dict())
    return ckpt


def test_student_checkpoint_layout():
    out = student_checkpoint(distiller_checkpoint(with_ema=False))
    assert list(out['state_dict']) == ['backbone.w']
    assert out['meta'] == {'epoch': 3, 'iter': 30, 'seed': 7,
                           'dataset_meta': {'classes': ('0', '1')},
                           'exported_from': 'mmkdflow distiller'}
    with pytest.raises(ValueError, match='no `student.\\*` weights'):
        student_checkpoint({'state_dict': {'teacher.w': torch.ones(1)}})


@pytest.mark.parametrize('with_ema', [False, True])
def test_deploy_checkpoint_takes_the_ema_weights_when_saved(with_ema):
    ckpt = distiller_checkpoint(with_ema)
    out = deploy_checkpoint(ckpt, ['a'])
    assert sorted(out['state_dict']) == ['connectors.a.fc.weight',
                                         'student.backbone.w']
    assert out['state_dict']['connectors.a.fc.weight'][0, 0] == (
        5. if with_ema else 1.)
    assert out['meta']['connector_ema'] == (['a'] if with_ema else [])
    with pytest.raises(ValueError, match="point 'c'"):
        deploy_checkpoint(ckpt, ['c'])


def test_ema_entry_round_trip():
    ckpt = distiller_checkpoint(with_ema=True)
    # keyed like the distiller's own weights, the EMA's step count left out
    assert list(ema_connector_state(ckpt)) == ['connectors.a.fc.weight']
    assert ema_connector_state({'state_dict': {}}) == {}
    # the live weights of chosen points, keyed like the averaged model
    assert list(connector_weights(ckpt, ['b'])) == ['b.fc.weight']


@pytest.mark.parametrize('cfg,identity', [
    (dict(type='mmkdflow.FMKTFeatureConnector', theta=True), True),
    (dict(type='FMKTFeatureConnector'), False),
    (dict(type='mmkdflow.FMKTLogitConnector'), False),
    (dict(type='FMKTLogitConnector', theta=True), True),
    (dict(type='FMKTLogitConnector', online=True), False),
    (dict(type='FMKTFeatureConnector', theta=True), True),
    (dict(type='DiffKDConnector'), True),
    (dict(type='IdentityConnector'), True),
    (dict(type='ConvAdapter'), False),
])
def test_identity_at_inference_is_declared_not_built(cfg, identity):
    # the configs lack required arguments (channels ...): building any of
    # them would fail, so the answer comes from the class alone
    assert connector_identity_at_inference(cfg) is identity


@pytest.mark.parametrize('cfg,identity', [
    (dict(type='FMKTFeatureConnector', channels=8, theta=True), True),
    (dict(type='FMKTFeatureConnector', channels=8), False),
    (dict(type='IdentityConnector'), True),
    (dict(type='ConvAdapter', in_channels=8, out_channels=8), False),
])
def test_built_connector_answers_with_its_class(cfg, identity):
    # a connector module put in the config in place of its dict
    from mmkdflow.registry import MODELS as KD_MODELS
    assert connector_identity_at_inference(KD_MODELS.build(cfg)) is identity


def test_unknown_connector_type_is_an_error():
    with pytest.raises(KeyError, match='NoSuchConnector'):
        connector_identity_at_inference(dict(type='NoSuchConnector'))


def test_deploy_points_from_unbuildable_connector_configs():
    cfg = Config(dict(model=dict(distill_points=dict(
        flow=dict(replace='head.fc', connector=dict(
            type='FMKTLogitConnector')),
        theta=dict(replace='neck', connector=dict(
            type='FMKTFeatureConnector', theta=True)),
        loss_only=dict(connector=dict(type='FMKTFeatureConnector'))))))
    assert deploy_points(cfg) == ['flow']


@pytest.mark.parametrize('name,vanilla,metainfo,defaults', [
    ('DigitsDetDataset', 'CocoDataset', DIGITS_METAINFO, {}),
    ('DigitsSegDataset', 'BaseSegDataset', DIGITS_SEG_METAINFO,
     dict(img_suffix='.png', seg_map_suffix='.png')),
    ('DigitsClsDataset', 'CustomDataset', DIGITS_CLS_METAINFO, {}),
])
def test_datasets_give_their_vanilla_config(name, vanilla, metainfo,
                                            defaults):
    cfg = dict(type=f'mmkdflow.{name}', data_root='data/x',
               digits_options=dict(seed=1), pipeline=[dict(type='A')])
    out = DATASETS.get(name).vanilla_config(cfg)
    assert out == dict(type=vanilla, data_root='data/x',
                       pipeline=[dict(type='A')], metainfo=dict(metainfo),
                       **defaults)
    assert cfg['digits_options'] == dict(seed=1)  # the input is unchanged
    # an argument the config gives is kept
    if defaults:
        given = DATASETS.get(name).vanilla_config(
            dict(cfg, img_suffix='.jpg'))
        assert given['img_suffix'] == '.jpg'


def test_student_config_writes_the_vanilla_datasets():
    cfg = Config.fromfile(config_path(
        'demo', 'cwd_deeplabv3-r18_deeplabv3-r18c16_1xb8-600it_digits-seg.py'))
    out = student_config(cfg)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = out[loader].dataset
        assert dataset.type == 'BaseSegDataset'
        assert 'digits_options' not in dataset
        assert dataset.img_suffix == '.png'
        assert tuple(dataset.metainfo['classes']) == \
            DIGITS_SEG_METAINFO['classes']
    assert out.default_scope == 'mmseg'
    assert 'custom_imports' not in out


class ExportLayoutToyModel(BaseModel):

    def forward(self, inputs=None, data_samples=None, mode='tensor'):
        return inputs


@pytest.mark.parametrize('from_cfg', [False, True])
def test_runner_arguments_read_by_the_hooks(tmp_path, from_cfg,
                                            registered_for_test):
    registered_for_test(MODELS, ExportLayoutToyModel)
    args = dict(model=dict(type='ExportLayoutToyModel'),
                work_dir=str(tmp_path), resume=True,
                randomness=dict(seed=3, diff_rank_seed=True),
                default_scope='mmengine', log_level='WARNING')
    runner = Runner.from_cfg(Config(args)) if from_cfg else Runner(**args)
    assert is_resuming(runner)
    assert randomness_args(runner) == dict(seed=3, diff_rank_seed=True)
    assert runner.val_loop is None  # no validation configured
    args.update(resume=False, randomness=dict(seed=None),
                work_dir=str(tmp_path / 'b'))
    runner = Runner.from_cfg(Config(args)) if from_cfg else Runner(**args)
    assert not is_resuming(runner)
    assert not randomness_args(runner).get('diff_rank_seed')


def test_test_registrations_are_removed_after_the_test():
    assert MODELS.get('ExportLayoutToyModel') is None
