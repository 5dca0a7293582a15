"""A config needs only its own task's OpenMMLab package.

A machine with mmdet but without mmseg and mmpretrain is simulated in a
fresh interpreter that refuses those imports (and ftfy, which mmseg 1.2
imports undeclared): building a second venv needs its own mmcv build
(about 11 minutes on 2 cores), too long for every CI run. There the
DigitsDet demo config imports, builds and trains one iteration through
MMEngine's Runner, and a seg or cls dataset gets mmkdflow's message naming
the extra to install.
"""
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
from utils import config_path

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _blocker(*packages: str) -> str:
    """Code that makes ``import`` of ``packages`` fail as if absent."""
    return textwrap.dedent(f'''
        import importlib.abc, sys
        class Absent(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in {packages!r}:
                    raise ModuleNotFoundError(
                        f'No module named {{name!r}}', name=name)
        sys.meta_path.insert(0, Absent())
        ''')


def _run(code: str, *packages: str) -> str:
    proc = subprocess.run(
        [sys.executable, '-c', _blocker(*packages) + textwrap.dedent(code)],
        capture_output=True, text=True, cwd=ROOT, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(
            f'subprocess failed:\n{proc.stdout}\n{proc.stderr[-4000:]}')
    return proc.stdout


@pytest.mark.parametrize('task,package,extra', [
    ('Seg', 'mmseg', 'seg'), ('Seg', 'ftfy', 'seg'),
    ('Cls', 'mmpretrain', 'cls'), ('Det', 'mmdet', 'det')])
def test_a_missing_task_package_names_the_extra(task, package, extra):
    out = _run(f'''
        import mmkdflow
        from mmkdflow.registry import DATASETS
        from mmkdflow.datasets.digits_datasets import MissingTaskPackage
        try:
            DATASETS.build(dict(type='mmkdflow.Digits{task}Dataset'))
        except MissingTaskPackage as err:
            print('MESSAGE', err)
        ''', package)
    message = out.split('MESSAGE', 1)[1]
    assert f'mmkdflow.Digits{task}Dataset' in message
    assert f"No module named '{package}'" in message
    assert f'pip install -e ".[{extra}]"' in message


@pytest.mark.slow
def test_det_demo_config_trains_without_seg_and_cls(tmp_path):
    """The FM-KT DigitsDet demo config, with a random teacher saved as its
    teacher_ckpt and small data, trains one iteration."""
    config = config_path(
        'demo', 'fmkt_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det.py')
    out = _run(f'''
        import sys
        sys.path.insert(0, {osp.join(ROOT, 'tests')!r})
        from mmengine.config import Config
        from mmengine.runner import Runner
        from utils import save_random_teacher
        from utils.e2e import shrink
        cfg = Config.fromfile({config!r})
        shrink(cfg, 'det', {str(tmp_path / 'data')!r},
               {str(tmp_path / 'work')!r})
        cfg.model.student.backbone = dict(init_cfg=None)
        cfg.model.teacher_ckpt = {str(tmp_path / 'teacher.pth')!r}
        save_random_teacher(cfg.model.teacher, cfg.model.teacher_ckpt)
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1,
                             val_interval=10)
        cfg.param_scheduler = []
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                            interval=10)
        runner = Runner.from_cfg(cfg)
        runner.train()
        loss = runner.message_hub.get_scalar('train/loss').current()
        print('LOSS', loss, 'ITER', runner.iter)
        for name in ('mmseg', 'mmpretrain', 'ftfy'):
            print('LOADED', name, name in sys.modules)
        ''', 'mmseg', 'mmpretrain', 'ftfy')
    fields = out.split('LOSS', 1)[1].split()
    assert float(fields[0]) > 0 and fields[2] == '1'
    assert out.count('LOADED') == 3 and 'True' not in out.split('LOSS')[1]
