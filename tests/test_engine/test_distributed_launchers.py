"""Launchers: backend choice, the slurm scripts and slurm without GPUs."""
import os
import subprocess
import textwrap

import pytest
from utils.e2e import ROOT
from mmengine.config import Config

from mmkdflow.distributed import setup_distributed


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
