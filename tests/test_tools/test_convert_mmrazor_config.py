"""tools/convert_mmrazor_config.py on MMRazor 1.0.0's own KD configs.

The configs are vendored under ``tests/fixtures/mmrazor_configs`` (the
``.mim/configs`` of the ``mmrazor==1.0.0`` wheel; MMRazor is not imported).
Every one of them is either converted or refused with the reasons listed
below. A converted config resolves, builds with a random teacher saved as
a local checkpoint (as tests/test_configs.py does) and trains one step.
The classification case runs by default (about 10 s); the detection and
segmentation cases, with their ResNet-101 / X-101 / Swin teachers, are
slow-marked (about 2-3 minutes together on 2 CPU cores).
"""
import glob
import importlib.util
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from utils import ROOT, student_scope
from mmengine.config import Config
from test_configs import build_as_the_runner, raw_batch

import mmkdflow  # noqa: F401  (mmkdflow:: bases resolve)

FIXTURES = osp.join(ROOT, 'tests', 'fixtures', 'mmrazor_configs')


def _tool():
    path = osp.join(ROOT, 'tools', 'convert_mmrazor_config.py')
    spec = importlib.util.spec_from_file_location('convert_mmrazor', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _tool()

#: Configs that convert: whether their train step is slow-marked.
CONVERTED = {
    'mmcls/kd/kd_logits_resnet34_resnet18_8xb32_in1k.py': False,
    'mmcls/kd/kd_logits_resnet50_mobilenet-v2_8xb32_in1k.py': True,
    'mmcls/kd/kd_logits_resnet50_shufflenet-v2-1x_16xb64_in1k.py': True,
    'mmcls/dkd/dkd_resnet34_resnet18_8xb32_in1k.py': True,
    'mmcls/dist/dist_logits_resnet34_resnet18_8xb32_in1k.py': True,
    'mmdet/cwd/cwd_fpn_frcnn_r101_frcnn_r50_1x_coco.py': True,
    'mmdet/cwd/cwd_fpn_retina_r101_retina_r50_1x_coco.py': True,
    'mmdet/cwd/cwd_cls_head_gfl_r101_fpn_gfl_r50_fpn_1x_coco.py': True,
    'mmdet/pkd/pkd_fpn_faster-rcnn_r101_faster-rcnn_r50_2x_coco.py': True,
    'mmdet/pkd/pkd_fpn_retina_x101_retina_r50_2x_coco.py': True,
    'mmdet/pkd/pkd_fpn_fcos_x101_retina_r50_1x_coco.py': True,
    'mmdet/pkd/pkd_fpn_reppoints_x101-dcn_reppoints_r50_2x_coco.py': True,
    'mmdet/pkd/pkd_fpn_mask-rcnn_swin_retina_r50_2x_coco.py': True,
    'mmseg/cwd/cwd_logits_pspnet_r101-d8_pspnet_r18-d8_4xb2-80k_'
    'cityscapes-512x1024.py': True,
}
#: Refused configs -> the reasons their message gives (one regex each).
REFUSED = {
    'mmcls/abloss/abloss_logits_resnet50_resnet18_8xb32_in1k.py': [
        r'SingleTeacherDistill\.init_cfg .* \(weights of a whole MMRazor',
        r'a teacher without teacher_ckpt'],
    'mmcls/abloss/abloss_pretrain_backbone_resnet50_resnet18_8xb32_'
    'in1k.py': [r'loss ABLoss .*nearest: PKDLoss or MSELoss'],
    'mmcls/byot/byot_resnet18_8xb16_cifar100.py': [
        r'algorithm SelfDistill', r'val_cfg with MMRazor modules'],
    'mmcls/crd/crd_neck_r50_r18_8xb16_cifar10.py': [
        r"model\.data_preprocessor .* differs from the student's",
        r'loss CRDLoss .*nearest: KDLoss',
        r"recorder 'data_samples' of type ModuleInputs",
        r"loss 'loss_crd' with arguments", r'connector CRDConnector',
        r'train_dataloader with MMRazor modules'],
    'mmcls/crd/datasets/crd_cifar10_bs16.py': [
        r'no model: not an algorithm config'],
    'mmcls/dafl/dafl_logits_resnet34_resnet18_8xb256_cifar10.py': [
        r'algorithm DAFLDataFreeDistillation',
        r'optim_wrapper with MMRazor modules'],
    'mmcls/deit/deit-base_regnety160_pt-16xb64_in1k.py': [
        r'student model with MMRazor modules', r'without teacher_ckpt',
        r'loss CrossEntropyLoss .*nearest: KDLoss',
        r'custom_hooks of the package bases .*refuses a key that two '
        r'bases set'],
    'mmcls/dfad/dfad_logits_resnet34_resnet18_8xb32_cifar10.py': [
        r'algorithm DataFreeDistillation',
        r'optim_wrapper with MMRazor modules'],
    'mmcls/factor_transfer/factor-transfer_backbone_resnet50_resnet18_'
    '8xb16_cifar10_pretrain.py': [
        r'student_trainable=False', r'model\.data_preprocessor',
        r'L2Loss\(normalize=True.*nearest: MSELoss',
        r"loss 'loss_s4_pretrain' with arguments"],
    'mmcls/factor_transfer/factor-transfer_backbone_resnet50_resnet18_'
    '8xb16_cifar10_train.py': [
        r'init_cfg', r'model\.data_preprocessor',
        r"'loss_s4_pretrain' has no loss_forward_mappings",
        r'loss FTLoss', r'connector Translator'],
    'mmcls/fitnets/fitnets_backbone_logits_resnet50_resnet18_8xb32_'
    'in1k.py': [
        r'L2Loss\(normalize=True',
        r'ConvModuleConnector\(in_channel=512, .*nearest: ConvAdapter',
        r'ConvModuleConnector\(in_channel=256, .*nearest: ConvAdapter'],
    'mmcls/ofd/ofd_backbone_resnet50_resnet18_8xb16_cifar10.py': [
        r"package config 'mmrazor::.*' \(mmrazor is not a package"],
    'mmcls/rkd/rkd_neck_resnet34_resnet18_8xb32_in1k.py': [
        r'loss DistanceWiseRKD .*nearest: DISTLoss',
        r'loss AngleWiseRKD .*nearest: DISTLoss'],
    'mmcls/wsld/wsld_logits_resnet34_resnet18_8xb32_in1k.py': [
        r'loss WSLD .*nearest: KDLoss',
        r"recorder 'gt_labels' of type ModuleInputs \(source "
        r"'head\.loss_module'\)", r"loss 'loss_wsld' with arguments"],
    'mmcls/zskt/zskt_backbone_logits_resnet34_resnet18_8xb16_cifar10.py': [
        r'algorithm DataFreeDistillation',
        r'optim_wrapper with MMRazor modules'],
    'mmdet/cwd/cwd_fpn_retina_r101_retina_r50_1x_coco_visualization.py': [
        r'hook RazorVisualizationHook .*tools/visualize_features\.py'],
    'mmdet/fbkd/fbkd_fpn_faster-rcnn_r101_faster-rcnn_r50_1x_coco.py': [
        r'loss FBKDLoss .*nearest: AttentionMSELoss',
        r'connector FBKDStudentConnector'],
    'mmdet/mgd/mgd_fpn_retina_x101_retina_r50_2x_coco.py': [
        r'loss MGDLoss .*nearest: a DiffKDConnector',
        r'connector MGDConnector .*nearest: DiffKDConnector'],
    'mmdet3d/pkd/pkd_fpn_fcos3d_r101_fcos3d_r50_8xb2-1x_nus-mono3d.py': [
        r"'mmdet3d::.*' \(mmdet3d is not a package mmkdflow distils\)"],
}


def fixture_configs() -> list:
    root = osp.join(FIXTURES, 'distill')
    return sorted(osp.relpath(p, root) for p in glob.glob(
        osp.join(root, '**', '*.py'), recursive=True))


def fixture(name: str) -> str:
    return osp.join(FIXTURES, 'distill', name)


def test_every_fixture_is_converted_or_refused_as_listed():
    found = {}
    for name in fixture_configs():
        try:
            tool.convert(fixture(name))
        except tool.ConversionError as err:
            found[name] = str(err)
    print('\nrefused:\n' + '\n'.join(f'{k}:\n  {v}' for k, v in
                                       found.items()))
    assert set(fixture_configs()) == set(CONVERTED) | set(REFUSED)
    assert sorted(found) == sorted(REFUSED)
    for name, reasons in REFUSED.items():
        message = found[name]
        for reason in reasons:
            assert re.search(reason, message), (name, reason, message)
        # one line per refused setting, each naming the nearest form
        lines = message.splitlines()
        assert len(lines) == len(reasons), (name, message)
        assert all('nearest:' in line for line in lines), message


def _params():
    return [pytest.param(name, id=name, marks=pytest.mark.slow if slow
                         else ()) for name, slow in CONVERTED.items()]


@pytest.mark.parametrize('name', _params())
def test_converted_config_builds_and_trains_one_step(name, tmp_path):
    out = tmp_path / 'converted.py'
    out.write_text(tool.convert(fixture(name)))
    cfg = Config.fromfile(str(out))
    assert cfg.model.type == 'Distiller' and cfg.model._scope_ == 'mmkdflow'
    assert [h.type for h in cfg.custom_hooks[:2]] == [
        'mmkdflow.SafeTrainingHook', 'mmkdflow.ResumeStateHook']
    assert cfg.custom_imports.imports == ['mmkdflow']
    model, saved = build_as_the_runner(cfg, tmp_path)
    loaded = model.teacher.state_dict()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    model.train()
    data = model.data_preprocessor(raw_batch(student_scope(cfg), name),
                                   True)
    losses = model(**data, mode='loss')
    total, log_vars = model.parse_losses(losses)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in
               log_vars.values()), log_vars
    assert {k.split('.')[1] for k in losses if k.startswith('distill.')} \
        == set(cfg.model.distill_points)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.student.parameters())
    model.remove_hooks()


def test_the_mapping_of_the_shipped_recipes():
    """What the converted configs say, setting by setting."""
    cwd = Config.fromstring(tool.convert(fixture(
        'mmdet/cwd/cwd_fpn_frcnn_r101_frcnn_r50_1x_coco.py')), '.py')
    assert cwd.model.teacher_forward == 'extract_feat'  # FpnTeacherDistill
    assert cwd.model.student.cfg_path == \
        'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'  # renamed
    assert list(cwd.model.distill_points) == [
        f'cwd_fpn{i}' for i in range(5)]
    assert cwd.model.distill_points.cwd_fpn3 == dict(
        student='neck', teacher='neck', index=3,
        loss=dict(type='ChannelWiseDivergence', tau=1, loss_weight=10))
    assert 'val_cfg' not in cwd._cfg_dict or \
        cwd.val_cfg.type == 'ValLoop'
    assert cwd.custom_hooks[-1] == dict(type='mmkdflow.TeacherReferenceHook')
    dkd = tool.convert(fixture('mmcls/dkd/dkd_resnet34_resnet18_8xb32_'
                               'in1k.py'))
    loss = Config.fromstring(dkd, '.py').model.distill_points.dkd.loss
    assert loss == dict(type='DKDLoss', alpha=1.0, beta=0.5, temperature=1,
                        warmup=0, loss_weight=1, reduction='sum')
    assert 'size_average=False' in dkd  # the note says why 'sum'
    pkd = Config.fromstring(tool.convert(fixture(
        'mmdet/pkd/pkd_fpn_retina_x101_retina_r50_2x_coco.py')), '.py')
    assert pkd.model.distill_points.pkd_fpn0.loss == dict(
        type='PKDLoss', loss_weight=10, resize_stu=True, unbiased=True,
        eps=1e-6)
    assert pkd.optim_wrapper.optimizer.lr == 0.01
    kd = Config.fromstring(tool.convert(fixture(
        'mmcls/kd/kd_logits_resnet50_mobilenet-v2_8xb32_in1k.py')), '.py')
    assert kd.model.student == dict(
        cfg_path='mmpretrain::mobilenet_v2/mobilenet-v2_8xb32_in1k.py')
    assert kd.model.distill_points.kl.loss == dict(
        type='KDLoss', temperature=1, loss_weight=3, reduction='batchmean')


RTMDET_STYLE = """_base_ = [{base!r}]
norm_cfg = dict(type='BN', affine=False, track_running_stats=False)
model = dict(
    distiller=dict(
        student_recorders=dict(
            fpn0=dict(type='ModuleOutputs', source='neck.fpn_convs.0.conv')),
        teacher_recorders=dict(
            fpn0=dict(type='ModuleOutputs', source='neck.fpn_convs.0.conv')),
        connectors=dict(
            s0=dict(type='ConvModuleConnector', in_channel=256,
                    out_channel=256, bias=False, norm_cfg=norm_cfg,
                    act_cfg=None),
            t0=dict(type='NormConnector', in_channels=256,
                    norm_cfg=norm_cfg)),
        distill_losses=dict(
            _delete_=True,
            loss_fpn0=dict(type='ChannelWiseDivergence', loss_weight=1)),
        loss_forward_mappings=dict(
            _delete_=True,
            loss_fpn0=dict(
                preds_S=dict(from_student=True, recorder='fpn0',
                             connector='s0'),
                preds_T=dict(from_student=False, recorder='fpn0',
                             connector={t!r})))))
custom_hooks = [dict(type='mmrazor.StopDistillHook', stop_epoch=10)]
"""


def test_stop_hook_and_the_rtmdet_connector_pair_carry_over(tmp_path):
    """The RTMDet recipe's pieces (not among MMRazor 1.0.0's configs):
    StopDistillHook and the ConvModuleConnector / NormConnector pair."""
    base = fixture('mmdet/cwd/cwd_fpn_frcnn_r101_frcnn_r50_1x_coco.py')
    path = tmp_path / 'rtmdet_style.py'
    path.write_text(RTMDET_STYLE.format(base=base, t='t0'))
    cfg = Config.fromstring(tool.convert(str(path)), '.py')
    assert cfg.model.distill_points.fpn0.connector == dict(
        type='ConvAdapter', in_channels=256, out_channels=256,
        with_bn=False, channel_norm=True)
    assert cfg.custom_hooks[2] == dict(type='mmkdflow.StopDistillHook',
                                       stop_epoch=10)
    assert cfg.custom_hooks[3].type == 'mmkdflow.TeacherReferenceHook'
    # the student side alone standardised: refused, naming the pair
    path.write_text(RTMDET_STYLE.format(base=base, t=None))
    with pytest.raises(tool.ConversionError,
                       match='without the matching teacher-side '
                       'NormConnector.*channel_norm=True'):
        tool.convert(str(path))


def test_command_line_writes_or_refuses(tmp_path):
    script = osp.join(ROOT, 'tools', 'convert_mmrazor_config.py')
    out = tmp_path / 'kd.py'
    run = [sys.executable, script]
    done = subprocess.run(
        run + [fixture('mmcls/kd/kd_logits_resnet34_resnet18_8xb32_in1k.py'),
               str(out), '--teacher-ckpt', 'teacher.pth'],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert Config.fromfile(str(out)).model.teacher_ckpt == 'teacher.pth'
    refused = subprocess.run(
        run + [fixture('mmcls/rkd/rkd_neck_resnet34_resnet18_8xb32_in1k.py'),
               str(tmp_path / 'rkd.py')],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert refused.returncode != 0
    assert 'loss AngleWiseRKD has no mmkdflow counterpart' in refused.stderr
    assert not (tmp_path / 'rkd.py').exists()
