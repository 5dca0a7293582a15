"""Mixed precision (bf16 autocast on CPU, fp16 AmpOptimWrapper on CUDA) with
the DiffKD and FM-KT connectors under the non-finite guard's optim
wrappers, and the guard in Runner runs."""
import math

import pytest
import torch
from utils import config_path, det_batch, tiny_retinanet
from utils.e2e import shrink
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from mmkdflow.engine.checkpoint import load_checkpoint_file
from mmkdflow.models import Distiller
from mmkdflow.engine import NonFiniteLossError
from mmkdflow.models.losses import MSELoss
from mmkdflow.registry import MODELS

STEPS = 20
#: 96 px, not 64: at 64 px RetinaNet's P7 conv (3x3, stride 2) gets a 1x1
#: input, and torch 2.13's oneDNN bf16 weight gradient of that case reads
#: uninitialised memory (intermittent NaN weights after a finite loss;
#: fine with fp32 or torch.backends.mkldnn disabled); at 96 px it gets 2x2
SIZE = 96
CONNECTORS = dict(
    diffkd=dict(index=(0, 1, 2), point=dict(connector=dict(
        type='DiffKDConnector', student_channels=16, teacher_channels=32,
        use_ae=True, ae_channels=8, kd_loss=dict(type='MSELoss')))),
    fmkt=dict(index=(0, 1, 2, 3, 4), point=dict(replace=True, connector=dict(
        type='FMKTFeatureConnector', channels=16, num_steps=2, teacher_proj=32,
        num_steps_choices=(1, 2, 3)))))


def raw_batch(seed: int) -> dict:
    """A DigitsDet-like batch before the data preprocessor (0..255)."""
    inputs, samples = det_batch(seed=seed, size=SIZE)
    return dict(inputs=list((inputs * 40 + 120).clamp(0, 255)),
                data_samples=samples)


def distiller(name: str) -> Distiller:
    point = dict(student='neck', teacher='neck',
                 index=CONNECTORS[name]['index'], **CONNECTORS[name]['point'])
    torch.manual_seed(0)
    return Distiller(student=tiny_retinanet(8, 16),
                            teacher=tiny_retinanet(16, 32),
                            allow_random_teacher=True,
                            distill_points=dict(fpn=point))


def run_steps(model, wrapper_cfg: dict, device: str = 'cpu') -> list:
    """``STEPS`` MMEngine training steps; the per-step log_vars, the dtypes
    seen at the student's backbone output and in the schedules, and the
    optim wrapper."""
    model = model.to(device)
    model.train()
    optim = build_optim_wrapper(model, dict(
        optimizer=dict(type='SGD', lr=0.01, momentum=0.9),
        clip_grad=dict(max_norm=35), **wrapper_cfg))
    seen = dict(backbone=set(), schedule=set())
    model.student.backbone.register_forward_hook(
        lambda m, i, out: seen['backbone'].add(out[0].dtype))
    conn = model.connectors['fpn']
    schedule = conn.schedule
    if hasattr(schedule, 'd_sigma'):  # FM-KT: coefficients of the path
        original = schedule.d_sigma

        def d_sigma(t):
            value = original(t)
            seen['schedule'].add(value.dtype)
            return value
        schedule.d_sigma = d_sigma
    logs = []
    for step in range(STEPS):
        log_vars = model.train_step(raw_batch(step), optim)
        logs.append({k: float(v.detach()) for k, v in log_vars.items()})
    return logs, seen, optim


def check_fp32_state(model) -> None:
    for name, param in model.named_parameters():
        assert param.dtype == torch.float32, name
        assert bool(torch.isfinite(param).all()), name
    for name, buffer in model.named_buffers():
        if buffer.is_floating_point():
            assert buffer.dtype == torch.float32, name


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(CONNECTORS))
def test_bf16_autocast_on_cpu_many_steps(name):
    model = distiller(name)
    logs, seen, optim = run_steps(model, dict(
        type='mmkdflow.NonFiniteGuardAutocastOptimWrapper', device_type='cpu',
        dtype='bfloat16'))
    assert seen['backbone'] == {torch.bfloat16}  # autocast really ran
    distill = [k for k in logs[0] if k.startswith('distill.')]
    assert distill and 'student.loss_cls' in logs[0]
    for step, log in enumerate(logs):
        assert all(math.isfinite(v) for v in log.values()), (step, log)
    assert optim.skipped_steps == 0
    check_fp32_state(model)
    conn = model.connectors['fpn']
    if name == 'diffkd':
        assert conn.schedule.alpha_bar.dtype == torch.float32
    else:
        assert seen['schedule'] == {torch.float64}  # never bf16


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
@pytest.mark.parametrize('name', sorted(CONNECTORS))
def test_fp16_amp_optim_wrapper_on_cuda(name):
    model = distiller(name)
    logs, seen, _ = run_steps(model, dict(
        type='mmkdflow.NonFiniteGuardAmpOptimWrapper', loss_scale='dynamic'),
        'cuda')
    assert seen['backbone'] == {torch.float16}
    finite = [all(math.isfinite(v) for v in log.values()) for log in logs]
    # the dynamic loss scale may skip its first overflowing steps; the
    # losses themselves stay finite
    assert all(finite), logs
    check_fp32_state(model)
    if name == 'diffkd':
        assert model.connectors['fpn'].schedule.alpha_bar.dtype == \
            torch.float32


# --------------------------------------------------- non-finite, Runner
class NaNFromIterLoss(MSELoss):
    """Test loss: MSE, NaN from iteration ``nan_from`` on."""

    def __init__(self, nan_from: int, **kwargs):
        super().__init__(**kwargs)
        self.nan_from = nan_from

    def forward(self, student, teacher, ctx=None):
        value = super().forward(student, teacher, ctx)
        return value * float('nan') if ctx.iter >= self.nan_from else value


@pytest.fixture
def det_root(digits_det, registered_for_test):
    """The tiny DigitsDet data, with the test loss registered."""
    registered_for_test(MODELS, NaNFromIterLoss)
    return digits_det(num_train=8, num_val=4, image_size=64)


def nan_runner(tmp_path, data_root: str, policy: str):
    from mmengine.runner import Runner
    demo = 'pkd_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det.py'
    cfg = shrink(Config.fromfile(config_path('demo', demo)), 'det',
                 data_root, str(tmp_path / policy), batch_size=2)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.digits_options = dict(
            seed=0, num_train=8, num_val=4, image_size=64)
    cfg.model.student = tiny_retinanet(8, 16)
    cfg.model.teacher = tiny_retinanet(16, 32)
    cfg.model.teacher_ckpt = None
    cfg.model.allow_random_teacher = True
    cfg.model.distill_points.fpn.connector.update(in_channels=16,
                                                  out_channels=32)
    cfg.model.distill_points.fpn.loss = dict(type='NaNFromIterLoss',
                                             nan_from=2)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=4)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.param_scheduler = []
    cfg.log_processor = dict(by_epoch=False)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2,
                                        by_epoch=False)
    # the demo config's SafeTrainingHook, with the policy under test
    assert cfg.custom_hooks[0].type == 'mmkdflow.SafeTrainingHook'
    cfg.custom_hooks[0].nonfinite = policy
    return Runner.from_cfg(cfg)


def finite_student(path: str) -> dict:
    state = load_checkpoint_file(path)['state_dict']
    student = {k: v for k, v in state.items() if k.startswith('student.')}
    assert student and all(bool(torch.isfinite(v).all())
                           for v in student.values() if v.is_floating_point())
    return student


def test_nan_loss_stops_the_run_before_a_nan_checkpoint(tmp_path, det_root):
    runner = nan_runner(tmp_path, det_root, 'raise')
    with pytest.raises(NonFiniteLossError,
                       match=r"iteration 2: distill\.fpn\.loss=nan "
                       r"\(distillation point 'fpn'\)"):
        runner.train()
    work = tmp_path / 'raise'
    finite_student(str(work / 'iter_2.pth'))
    assert not (work / 'iter_4.pth').exists()
    for param in runner.model.parameters():
        assert bool(torch.isfinite(param).all())


def test_nan_loss_skip_policy_skips_the_updates(tmp_path, det_root):
    runner = nan_runner(tmp_path, det_root, 'skip')
    runner.train()
    assert runner.optim_wrapper.skipped_steps == 2 and runner.iter == 4
    work = tmp_path / 'skip'
    before = finite_student(str(work / 'iter_2.pth'))
    after = finite_student(str(work / 'iter_4.pth'))
    for key, value in before.items():
        if 'running_' in key or 'num_batches' in key:
            continue  # BN statistics still follow the skipped batches
        torch.testing.assert_close(after[key], value, rtol=0, atol=0)
