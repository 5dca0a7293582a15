"""``tools/export_student.py`` on FM-KT distillers.

It writes, for plain FM-KT, a deployable ``Distiller`` with
``teacher=None`` carrying the flow (with its EMA weights when the
checkpoint holds them), which must reproduce the distiller's predictions;
for FM-KT-Theta, the vanilla student. (What the student computes at
inference, in training and in eval mode: test_fmkt_inference.py.)
"""
import copy
import os.path as osp
import sys

import pytest
import torch
from utils import (cls_batch, config_path, det_batch, tiny_resnet_cls,
                   tiny_retinanet)
from utils.e2e import load_tool
from mmengine.config import Config
from mmengine.model import ExponentialMovingAverage
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

from mmkdflow.engine.checkpoint.layout import CONNECTOR_EMA_KEY
from mmkdflow.engine.student_export import deploy_points
from mmkdflow.registry import MODELS


def _export_tool():
    return load_tool('export_student').export


def write_config(tmp_path, demo: str, student: dict, teacher: dict,
                 teacher_ckpt: str, connector: dict) -> str:
    """A demo config with tiny models (the demo's own sizes are too slow)."""
    point = 'fpn' if demo.endswith('digits-det.py') else 'flow'
    path = str(tmp_path / f'tiny_{demo}')
    with open(path, 'w') as f:
        f.write(
            f'_base_ = [{config_path("demo", demo)!r}]\n'
            f'model = dict(\n'
            f'    student=dict(_delete_=True, **{student!r}),\n'
            f'    teacher=dict(_delete_=True, **{teacher!r}),\n'
            f'    teacher_ckpt={teacher_ckpt!r},\n'
            f'    distill_points=dict(\n'
            f'        {point}=dict(connector={connector!r})))\n')
    return path


def build(cfg_path: str):
    cfg = Config.fromfile(cfg_path)
    torch.manual_seed(0)
    return cfg, MODELS.build(copy.deepcopy(cfg.model))


def fake_checkpoint(model, ema_noise: float = 0.0) -> dict:
    """What the Runner saves, with an EMA of the connectors that differs
    from the live weights when ``ema_noise`` > 0."""
    ckpt = {'meta': {'dataset_meta': {'classes': tuple(map(str, range(10)))},
                     'epoch': 3, 'iter': 30},
            'state_dict': {k: v.clone() for k, v in
                           model.state_dict().items()}}
    if ema_noise:
        ema = ExponentialMovingAverage(
            torch.nn.ModuleDict(dict(model.connectors)), momentum=0.001)
        gen = torch.Generator().manual_seed(3)
        for p in ema.module.parameters():
            p.data.add_(ema_noise * torch.randn(p.shape, generator=gen))
        ckpt[CONNECTOR_EMA_KEY] = ema.state_dict()
    return ckpt


def load_exported(cfg_out: str, ckpt_out: str):
    cfg = Config.fromfile(cfg_out)  # custom_imports brings in mmkdflow
    init_default_scope(cfg.default_scope)
    model = ROOT_MODELS.build(cfg.model)
    load_checkpoint(model, ckpt_out, map_location='cpu', strict=True)
    return cfg, model.eval()


def test_plain_fmkt_detector_exports_the_flow(tmp_path, saved_teacher):
    teacher_ckpt, _ = saved_teacher(tiny_retinanet(8, 32))
    connector = dict(channels=16, teacher_proj=32, num_steps=2,
                     num_steps_test=3)
    student = tiny_retinanet(8, 16)
    student['test_cfg']['score_thr'] = 0.0
    src = write_config(tmp_path, 'fmkt_atss-r18_atss-r18c8_fpn_'
                       '1xb16-8e_digits-det.py',
                       student, tiny_retinanet(8, 32), teacher_ckpt,
                       connector)
    cfg, distiller = build(src)
    assert deploy_points(cfg) == ['fpn']
    ckpt = fake_checkpoint(distiller, ema_noise=0.05)
    ckpt_in, out = str(tmp_path / 'epoch_3.pth'), str(tmp_path / 'deploy.pth')
    torch.save(ckpt, ckpt_in)
    cfg_out = _export_tool()(src, ckpt_in, out)

    exported_cfg, deployed = load_exported(cfg_out, out)
    assert exported_cfg.custom_imports.imports == ['mmkdflow']
    assert exported_cfg.default_scope == 'mmdet'
    assert exported_cfg.model.teacher is None
    point = exported_cfg.model.distill_points.fpn
    assert set(point) == {'student', 'student_index', 'replace', 'connector'}
    assert deployed.teacher is None and list(deployed.connectors) == ['fpn']
    state = torch.load(out, weights_only=True)['state_dict']
    assert not any(k.startswith('teacher.') for k in state)
    assert torch.load(out, weights_only=True)['meta']['connector_ema'] == [
        'fpn']

    # the distiller's student evaluated with the EMA flow
    ema = {k[len('module.'):]: v for k, v in ckpt[CONNECTOR_EMA_KEY].items()
           if k.startswith('module.')}
    distiller.connectors.load_state_dict(ema)
    assert not torch.equal(
        distiller.connectors.fpn.field(0).meta_encoder[0].fc1.weight,
        ckpt['state_dict']['connectors.fpn.flows.fields.0.meta_encoder.0.'
                           'fc1.weight'])
    distiller.eval()
    inputs, samples = det_batch(2, 64)
    with torch.no_grad():
        want = distiller(inputs, samples, mode='predict')
        got = deployed(inputs, copy.deepcopy(samples), mode='predict')
        plain = distiller.student(inputs, copy.deepcopy(samples),
                                  mode='predict')
    for g, w, p in zip(got, want, plain):
        torch.testing.assert_close(g.pred_instances.bboxes,
                                   w.pred_instances.bboxes)
        torch.testing.assert_close(g.pred_instances.scores,
                                   w.pred_instances.scores)
        assert not torch.allclose(g.pred_instances.scores[:20],
                                  p.pred_instances.scores[:20])

    # mmdet's own API loads it (cfg_options={} because init_detector
    # otherwise reads config.model.backbone, which a distiller has not)
    from mmdet.apis import init_detector
    api_model = init_detector(cfg_out, out, device='cpu', cfg_options={})
    assert api_model.dataset_meta['classes'][3] == '3'
    with torch.no_grad():
        api_out = api_model(inputs, copy.deepcopy(samples), mode='predict')
    torch.testing.assert_close(api_out[0].pred_instances.scores,
                               want[0].pred_instances.scores)


def test_plain_logit_flow_classifier_exports_the_flow(tmp_path,
                                                      saved_teacher):
    teacher_ckpt, _ = saved_teacher(tiny_resnet_cls(16))
    src = write_config(tmp_path,
                       'fmkt_resnet18_resnet18c8_1xb32-10e_digits-cls.py',
                       tiny_resnet_cls(8), tiny_resnet_cls(16), teacher_ckpt,
                       dict(num_steps=3))
    cfg, distiller = build(src)
    assert deploy_points(cfg) == ['flow']
    ckpt_in, out = str(tmp_path / 'epoch_3.pth'), str(tmp_path / 'deploy.pth')
    torch.save(fake_checkpoint(distiller), ckpt_in)
    cfg_out = _export_tool()(src, ckpt_in, out)
    exported_cfg, deployed = load_exported(cfg_out, out)
    assert exported_cfg.default_scope == 'mmpretrain'
    assert torch.load(out, weights_only=True)['meta']['connector_ema'] == []
    distiller.eval()
    inputs, samples = cls_batch(4, 32)
    with torch.no_grad():
        want = distiller(inputs, mode='tensor')
        got = deployed(inputs, mode='tensor')
        plain = distiller.student(inputs, mode='tensor')
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, plain)

    from mmpretrain import get_model
    api_model = get_model(cfg_out, pretrained=out, device='cpu')
    with torch.no_grad():
        torch.testing.assert_close(api_model(inputs, mode='tensor'), want)


@pytest.mark.parametrize('task', ['det', 'cls'])
def test_theta_exports_the_vanilla_student(task, tmp_path, saved_teacher):
    if task == 'det':
        student, teacher = tiny_retinanet(8, 16), tiny_retinanet(8, 32)
        demo = ('fmkt-theta_atss-r18_atss-r18c8_fpn_1xb16-8e_'
                'digits-det.py')
        connector = dict(channels=16, teacher_proj=32)
    else:
        student, teacher = tiny_resnet_cls(8), tiny_resnet_cls(16)
        demo = 'fmkt_resnet18_resnet18c8_1xb32-10e_digits-cls.py'
        connector = dict(theta=True)
    teacher_ckpt, _ = saved_teacher(teacher)
    src = write_config(tmp_path, demo, student, teacher, teacher_ckpt,
                       connector)
    cfg, distiller = build(src)
    assert deploy_points(cfg) == []
    ckpt_in, out = str(tmp_path / 'epoch_3.pth'), str(tmp_path / 'deploy.pth')
    torch.save(fake_checkpoint(distiller, ema_noise=0.05), ckpt_in)
    cfg_out = _export_tool()(src, ckpt_in, out)

    exported_cfg = Config.fromfile(cfg_out)
    assert 'custom_imports' not in exported_cfg
    assert exported_cfg.model.type == student['type']
    init_default_scope(exported_cfg.default_scope)
    vanilla = ROOT_MODELS.build(exported_cfg.model)
    state = torch.load(out, weights_only=True)['state_dict']
    want = vanilla.state_dict()
    assert list(state) == list(want)
    assert all(state[k].shape == want[k].shape for k in want)
    assert {k: v.shape for k, v in state.items()} == {
        k: v.shape for k, v in distiller.student.state_dict().items()}


def test_deploy_points_of_other_methods():
    pkd = Config.fromfile(config_path(
        'demo',
        'pkd_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det.py'))
    ofmkt = Config.fromfile(config_path(
        'demo', 'ofmkt_resnet18c8_1xb32-10e_digits-cls.py'))
    assert deploy_points(pkd) == []
    assert deploy_points(ofmkt) == ['flow']


def test_export_tool_takes_cfg_options_and_home_paths(tmp_path, monkeypatch,
                                                      saved_teacher):
    """``--cfg-options`` reaches the exported config (a moved data root),
    and ``~`` in the checkpoint and output paths is expanded."""
    teacher_ckpt, _ = saved_teacher(tiny_retinanet(8, 32))
    src = write_config(tmp_path, 'fmkt_atss-r18_atss-r18c8_fpn_'
                       '1xb16-8e_digits-det.py', tiny_retinanet(8, 16),
                       tiny_retinanet(8, 32), teacher_ckpt,
                       dict(channels=16, teacher_proj=32, num_steps=2))
    _, distiller = build(src)
    home = tmp_path / 'home'
    home.mkdir()
    torch.save(fake_checkpoint(distiller), str(home / 'epoch_3.pth'))
    monkeypatch.setenv('HOME', str(home))
    tool = load_tool('export_student')
    monkeypatch.setattr(sys, 'argv', [
        'export_student.py', src, '~/epoch_3.pth', '~/deploy.pth',
        '--cfg-options', 'test_dataloader.dataset.data_root=/moved/digits/'])
    tool.main()
    exported = Config.fromfile(str(home / 'deploy.py'))
    assert exported.test_dataloader.dataset.data_root == '/moved/digits/'
    assert osp.isfile(home / 'deploy.pth')
    load_exported(str(home / 'deploy.py'), str(home / 'deploy.pth'))
