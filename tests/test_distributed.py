"""Multi-process training on CPU (gloo), SyncBN without GPUs, slurm script.

The distributed run and its single-process reference see the same global
batch of 2 DigitsDet images per update: 2 processes x batch 1 under DDP, and
1 process x batch 1 with ``accumulative_counts=2`` (the gradients of the two
images are averaged before each step, as DDP averages them). Every forward
pass thus sees one image in both runs, so batch-coupled statistics (student
BN in train mode, PKD's per-channel normalisation over ``(N, H, W)``,
RetinaNet's ``avg_factor``) are identical; a single process with batch 2
would differ from 2 x 1 by design, not by a bug.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import config_path, tiny_deeplabv3, tiny_retinanet
from e2e_utils import ROOT, shrink
from mmengine.config import Config

from mmkdflow import distributed
from mmkdflow.distributed import setup_distributed
from mmkdflow.models.utils import model_builder

PROBE_MODULE = 'kd_test_probe'
PROBE_SOURCE = '''
"""Test-only hooks: record each rank's losses, kill the process on cue."""
import io
import json
import os
import signal

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class LossProbeHook(Hook):
    """Append ``{rank, iter, img_ids, losses}`` per iteration to
    ``<out>.rank<r>.jsonl``; SIGKILL the process after iteration
    ``kill_after_iter`` or halfway through writing the checkpoint of epoch
    ``kill_in_save`` (half of its bytes are on disk when it dies)."""

    priority = 'LOWEST'

    def __init__(self, out, kill_after_iter=None, kill_in_save=None):
        self.out = out
        self.kill_after_iter = kill_after_iter
        self.kill_in_save = kill_in_save

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        record = dict(
            rank=get_rank(), iter=runner.iter,
            img_ids=[int(s.img_id) for s in data_batch['data_samples']],
            losses={k: float(v.detach()) for k, v in outputs.items()})
        with open(f'{self.out}.rank{get_rank()}.jsonl', 'a') as f:
            f.write(json.dumps(record) + '\\n')
        if runner.iter == self.kill_after_iter:
            _die()

    def before_save_checkpoint(self, runner, checkpoint):
        if checkpoint['meta']['epoch'] != self.kill_in_save:
            return
        real_save = torch.save

        def half_save_then_die(obj, f, *args, **kwargs):
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            data = buffer.getvalue()
            f.write(data[:len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            _die()

        torch.save = half_save_then_die
'''


def write_probe(folder: str) -> None:
    """Write the probe hooks as an importable module into ``folder``."""
    with open(osp.join(folder, PROBE_MODULE + '.py'), 'w') as f:
        f.write(PROBE_SOURCE)


def read_probe(out: str, rank: int = 0) -> list:
    """The records one rank wrote, in order."""
    with open(f'{out}.rank{rank}.jsonl') as f:
        return [json.loads(line) for line in f]


def tiny_det_config(tmp_path, name: str, data_root: str, teacher_ckpt: str,
                    probe_out: str, max_iters: int, batch_size: int = 1,
                    num_train: int = 12, **probe) -> str:
    """The PKD demo config shrunk to tiny RetinaNets on 64 px DigitsDet,
    ``max_iters`` iterations without validation, with the probe hook;
    dumped to ``tmp_path/<name>.py``."""
    cfg = shrink(Config.fromfile(config_path(
        'demo', 'pkd_retinanet-r18_retinanet-r18c16_fpn_1xb4-4e_digits-det.py')), 'det', data_root,
        str(tmp_path / name), batch_size=batch_size)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.digits_options = dict(
            seed=0, num_train=num_train, num_val=4, image_size=64)
    cfg.model.student = tiny_retinanet(8, 16)
    cfg.model.teacher = tiny_retinanet(16, 32)
    cfg.model.teacher_ckpt = teacher_ckpt
    cfg.model.distill_points.fpn.connector.update(in_channels=16,
                                                  out_channels=32)
    cfg.custom_imports = dict(imports=['mmkdflow', PROBE_MODULE],
                              allow_failed_imports=False)
    cfg.custom_hooks = [dict(type='LossProbeHook', out=probe_out, **probe)]
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
    cfg.param_scheduler = []
    cfg.log_processor = dict(window_size=1, by_epoch=False)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1000,
                                        by_epoch=False)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    path = str(tmp_path / f'{name}.py')
    cfg.dump(path)
    return path


def save_teacher(tmp_path) -> str:
    from mmengine.registry import MODELS
    torch.manual_seed(1)
    teacher = MODELS.build(tiny_retinanet(16, 32))
    path = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': teacher.state_dict()}, path)
    return path


def tool_env(tmp_path, **extra) -> dict:
    """Environment of the tool subprocesses: the probe module importable,
    one thread per process (2 shared cores), the venv's python first."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHON=sys.executable, PYTHONPATH=f'{tmp_path}:{ROOT}')
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env['PATH']
    env.update(extra)
    return env


def run(cmd: list, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f'{cmd} exited with {proc.returncode}:\n'
                             f'{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}')
    return proc


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- tests
@pytest.mark.slow
def test_dist_train_gloo_matches_single_process(tmp_path):
    """``tools/dist_train.sh CONFIG 2`` on CPU: gloo, DDP, 2 ranks x 1 image;
    the reference: 1 process x 1 image, gradients accumulated over 2."""
    write_probe(str(tmp_path))
    data_root = str(tmp_path / 'digits_det')
    teacher = save_teacher(tmp_path)
    single_out = str(tmp_path / 'single')
    single = tiny_det_config(tmp_path, 'single', data_root, teacher,
                             single_out, max_iters=4)
    run([sys.executable, 'tools/train.py', single, '--cfg-options',
         'optim_wrapper.accumulative_counts=2'], tool_env(tmp_path))
    dist_out = str(tmp_path / 'dist')
    dist = tiny_det_config(tmp_path, 'dist', data_root, teacher, dist_out,
                           max_iters=2)
    proc = run(['bash', 'tools/dist_train.sh', dist, '2'],
               tool_env(tmp_path, PORT=str(free_port())))
    assert 'gloo backend' in proc.stdout + proc.stderr

    reference = read_probe(single_out)
    ranks = [read_probe(dist_out, rank) for rank in (0, 1)]
    assert [len(r) for r in ranks] == [2, 2] and len(reference) == 4
    for step in (0, 1):
        for rank in (0, 1):
            got, want = ranks[rank][step], reference[2 * step + rank]
            # DistributedSampler order == the single run's order
            assert got['img_ids'] == want['img_ids']
            # step 0: same weights, same image (bitwise equal in practice).
            # step 1: after one update from all-reduced vs accumulated
            # gradients, which add the same numbers in another order
            # (measured: equal to float32 precision)
            tol = 1e-6 if step == 0 else 1e-5
            print(f'step {step} rank {rank}: dist {got["losses"]} single '
                  f'{want["losses"]}')
            assert set(got['losses']) == set(want['losses'])
            for key, value in want['losses'].items():
                assert got['losses'][key] == pytest.approx(value, rel=tol,
                                                           abs=1e-7), key
    # both ranks trained on different images
    assert ranks[0][0]['img_ids'] != ranks[1][0]['img_ids']


def test_every_connector_parameter_gets_a_gradient():
    """DDP runs with find_unused_parameters=False (MMEngine's default):
    the DiffKD and FM-KT feature connectors (and the adapters) use all
    their parameters in every training step, so their configs need no
    find_unused_parameters. (The FM-KT logit-flow configs replace the
    student's classifier, which is then unused: those configs set
    ``model_wrapper_cfg.find_unused_parameters=True`` and say why.)"""
    from conftest import det_batch

    from mmkdflow.models import Distiller
    connectors = dict(
        diffkd=dict(type='DiffKDConnector', student_channels=16,
                    teacher_channels=32, use_ae=True, ae_channels=8,
                    kd_loss=dict(type='MSELoss')),
        # as the FM-KT detection configs: no loss on the last level
        fmkt=dict(type='FMKTConnector', channels=16, num_steps=2,
                  num_steps_choices=(1, 2), teacher_proj=32,
                  dirac_ratio=0.5, level_weights=[10, 10, 10, 10, 0]),
        adapter=dict(type='ConvAdapter', in_channels=16, out_channels=32))
    for name, connector in connectors.items():
        point = dict(student='neck', teacher='neck', index=(0, 1, 2, 3, 4),
                     connector=connector, replace=name == 'fmkt')
        if name == 'adapter':
            point['loss'] = dict(type='PKDLoss')
        torch.manual_seed(0)
        model = Distiller(student=tiny_retinanet(8, 16),
                                 teacher=tiny_retinanet(16, 32),
                                 allow_random_teacher=True,
                                 distill_points=dict(p=point))
        model.train()
        for seed in (0, 1):  # random step counts / pairings / timesteps
            model.zero_grad()
            losses = model(*det_batch(seed=seed), mode='loss')
            model.parse_losses(losses)[0].backward()
            unused = [n for n, p in model.named_parameters()
                      if p.requires_grad and p.grad is None]
            assert not unused, (name, unused)


def test_syncbn_becomes_bn_without_gpu_and_stays_with_one(monkeypatch):
    logged = []
    monkeypatch.setattr(distributed, 'print_log',
                        lambda msg, *a, **k: logged.append(msg))
    cfg = tiny_deeplabv3(8)
    syncbn = dict(type='SyncBN', requires_grad=True)
    cfg['backbone']['norm_cfg'] = cfg['decode_head']['norm_cfg'] = syncbn

    monkeypatch.setattr(distributed, 'gpu_available', lambda: True)
    on_gpu = model_builder.build_task_model(cfg, 'student')
    kinds = {type(m).__name__ for m in on_gpu.modules()}
    assert 'SyncBatchNorm' in kinds and not logged

    monkeypatch.setattr(distributed, 'gpu_available', lambda: False)
    torch.manual_seed(0)
    on_cpu = model_builder.build_task_model(cfg, 'student')
    assert not any(type(m).__name__ == 'SyncBatchNorm'
                   for m in on_cpu.modules())
    assert any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
               for m in on_cpu.modules())
    assert len(logged) == 1 and 'SyncBN layer(s) of the student to BN' \
        in logged[0]
    # the converted model trains and keeps SyncBN's parameter names
    assert set(on_cpu.state_dict()) == set(on_gpu.state_dict())
    from conftest import seg_batch
    losses = on_cpu(*seg_batch(), mode='loss')
    assert torch.isfinite(sum(v for k, v in losses.items() if 'loss' in k))

    # the mmseg package config the FM-KT/DiffKD Cityscapes configs extend
    package = dict(cfg_path='mmseg::deeplabv3/'
                   'deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py')
    for cuda in (True, False):
        monkeypatch.setattr(distributed, 'gpu_available', lambda: cuda)
        model = model_builder.build_task_model(package, 'student')
        count = sum(type(m).__name__ == 'SyncBatchNorm'
                    for m in model.modules())
        assert (count > 0) if cuda else (count == 0)
    assert len(logged) == 2


def test_setup_distributed_picks_gloo_without_gpu(monkeypatch):
    calls = []
    monkeypatch.setattr('mmkdflow.distributed.init_cpu_process_group',
                        lambda launcher, dist_cfg: calls.append(
                            (launcher, dist_cfg)))
    monkeypatch.delenv('MMKDFLOW_DIST_BACKEND', raising=False)

    def cfg(**extra):
        return Config(dict(launcher='pytorch', env_cfg=dict(
            dist_cfg=dict(backend='nccl', timeout=60)), **extra))

    gpu = cfg(sync_bn='torch')
    setup_distributed(gpu, cuda=True)
    assert gpu.env_cfg.dist_cfg.backend == 'nccl' and gpu.sync_bn == 'torch'
    assert 'model_wrapper_cfg' not in gpu and not calls

    cpu = cfg(sync_bn='torch', find_unused_parameters=True)
    setup_distributed(cpu, cuda=False)
    assert cpu.env_cfg.dist_cfg.backend == 'gloo' and cpu.sync_bn is None
    assert cpu.model_wrapper_cfg.device_ids is None
    assert cpu.model_wrapper_cfg.find_unused_parameters is True
    assert calls == [('pytorch', dict(backend='gloo', timeout=60))]

    monkeypatch.setenv('MMKDFLOW_DIST_BACKEND', 'mpi')
    chosen = cfg()
    setup_distributed(chosen, cuda=False)
    assert chosen.env_cfg.dist_cfg.backend == 'mpi'

    single = Config(dict(launcher='none'))
    setup_distributed(single, cuda=False)
    assert 'env_cfg' not in single


def fake_srun_env(tmp_path, **variables) -> dict:
    """An environment whose ``srun`` writes its arguments, one per line,
    to ``tmp_path/srun_args``."""
    fake = tmp_path / 'bin'
    fake.mkdir()
    (fake / 'srun').write_text(textwrap.dedent(f'''\
        #!/usr/bin/env bash
        printf '%s\\n' "$@" > {tmp_path}/srun_args
        '''))
    (fake / 'srun').chmod(0o755)
    return dict(os.environ, PATH=f'{fake}{os.pathsep}{os.environ["PATH"]}',
                **variables)


def test_slurm_train_script_openmmlab_form(tmp_path):
    """``tools/slurm_train.sh PARTITION JOB CONFIG WORK_DIR [args]`` calls
    ``srun`` with one task per GPU and ``train.py --launcher=slurm``."""
    env = fake_srun_env(tmp_path, GPUS='16', GPUS_PER_NODE='8',
                        CPUS_PER_TASK='4', SRUN_ARGS='--quotatype=auto')
    subprocess.run(['bash', 'tools/slurm_train.sh', 'gpu', 'kd', 'cfg.py',
                    'work', '--amp'], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    args = (tmp_path / 'srun_args').read_text().split('\n')
    for expected in ('-p', 'gpu', '--job-name=kd', '--gres=gpu:8',
                     '--ntasks=16', '--ntasks-per-node=8',
                     '--cpus-per-task=4', '--kill-on-bad-exit=1',
                     '--quotatype=auto', 'cfg.py', '--work-dir=work',
                     '--launcher=slurm', '--amp'):
        assert expected in args, (expected, args)
    assert any(a.endswith('tools/train.py') for a in args)

    # GPUS_PER_NODE=0: CPU tasks (gloo), no GPU request
    env.update(GPUS='4', GPUS_PER_NODE='0', TASKS_PER_NODE='2')
    subprocess.run(['bash', 'tools/slurm_train.sh', 'cpu', 'kd', 'cfg.py',
                    'work'], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    args = (tmp_path / 'srun_args').read_text().split('\n')
    assert not [a for a in args if a.startswith('--gres')]
    assert '--ntasks=4' in args and '--ntasks-per-node=2' in args


def test_slurm_test_script_openmmlab_form(tmp_path):
    """``tools/slurm_test.sh PARTITION JOB CONFIG CHECKPOINT [args]``
    calls ``srun`` with ``test.py CONFIG CHECKPOINT [args]
    --launcher=slurm``."""
    env = fake_srun_env(tmp_path, GPUS='8', GPUS_PER_NODE='8')
    subprocess.run(['bash', 'tools/slurm_test.sh', 'gpu', 'kd-test',
                    'cfg.py', 'epoch_24.pth', '--out', 'r.pkl'], cwd=ROOT,
                   env=env, check=True, capture_output=True)
    args = (tmp_path / 'srun_args').read_text().split('\n')
    script = [i for i, a in enumerate(args) if a.endswith('tools/test.py')]
    assert len(script) == 1, args
    assert args[script[0] + 1:script[0] + 6] == [
        'cfg.py', 'epoch_24.pth', '--out', 'r.pkl', '--launcher=slurm']
    for expected in ('-p', 'gpu', '--job-name=kd-test', '--gres=gpu:8',
                     '--ntasks=8'):
        assert expected in args, (expected, args)


def test_slurm_launcher_without_gpu_starts_gloo(monkeypatch):
    import torch.distributed as dist

    from mmkdflow.distributed import init_cpu_process_group
    calls = []
    monkeypatch.setattr(dist, 'is_initialized', lambda: False)
    monkeypatch.setattr(dist, 'init_process_group',
                        lambda **kwargs: calls.append(kwargs))
    for name, value in dict(SLURM_PROCID='3', SLURM_NTASKS='4',
                            SLURM_LOCALID='1', SLURM_NODELIST='node[1-2]',
                            MASTER_ADDR='10.0.0.1').items():
        monkeypatch.setenv(name, value)
    for name in ('MASTER_PORT', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.delenv(name, raising=False)
    init_cpu_process_group('slurm', dict(backend='gloo', port=29510))
    assert calls == [dict(backend='gloo', rank=3, world_size=4)]
    assert (os.environ['RANK'], os.environ['LOCAL_RANK'],
            os.environ['WORLD_SIZE'], os.environ['MASTER_PORT']) == (
                '3', '1', '4', '29510')
    with pytest.raises(ValueError, match="launcher 'mpi' is not supported"):
        init_cpu_process_group('mpi', dict(backend='gloo'))
