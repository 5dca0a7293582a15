"""The supported dependency range: declared once (mmkdflow/version.py),
spelled the same for pip (requirements/, package metadata), enforced at
import with mmkdflow's message."""
import importlib.metadata
import os.path as osp
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

import mmkdflow
from mmkdflow import compat
from mmkdflow.version import SUPPORTED, __version__

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def requirement_lines(name):
    with open(osp.join(ROOT, 'requirements', f'{name}.txt')) as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line]


def test_requirements_spell_the_supported_range():
    declared = {}
    for line in requirement_lines('runtime') + requirement_lines('mminstall'):
        for name, dist in compat.DISTRIBUTIONS.items():
            if line.startswith(dist + '>='):
                declared[name] = line
    assert declared == {
        name: f'{compat.DISTRIBUTIONS[name]}>={low},<{high}'
        for name, (low, high) in SUPPORTED.items()}


def test_package_metadata_declares_the_dependencies():
    requires = importlib.metadata.requires('mmkdflow') or []
    plain = {(r.name, r.specifier) for r in map(Requirement, requires)
             if r.marker is None}
    assert plain == {(r.name, r.specifier) for r in
                     map(Requirement, requirement_lines('runtime'))}
    extras = importlib.metadata.metadata('mmkdflow').get_all(
        'Provides-Extra')
    assert set(extras) >= {'det', 'seg', 'cls', 'all', 'demo', 'tests'}
    assert any(r.startswith('mmdet') and 'extra == "det"' in r
               for r in requires)
    assert importlib.metadata.version('mmkdflow') == __version__
    assert importlib.metadata.metadata('mmkdflow')['Requires-Python'] == \
        '>=3.9'


def test_installed_stack_is_inside_the_range():
    for package in ('torch', 'mmcv', 'mmengine'):
        compat.check_version(package)  # what the import did
    assert compat.installed_version('torch') == sys.modules['torch'] \
        .__version__


@pytest.mark.parametrize('package,version', [
    ('torch', '2.0.1'), ('torch', '2.14.1'), ('torch', '1.13.1+cu117'),
    ('mmcv', '2.2.0'), ('mmcv', '2.0.1'), ('mmengine', '0.9.1'),
    ('mmengine', '0.11.0'), ('mmdet', '3.2.0'), ('mmseg', '1.1.2'),
    ('mmpretrain', '1.1.0')])
def test_versions_outside_the_range_are_refused(package, version):
    low, high = SUPPORTED[package]
    with pytest.raises(compat.VersionError) as info:
        compat.check_version(package, version)
    message = str(info.value)
    assert f'{package} {version} is installed' in message
    assert f'{package} >= {low}, < {high}' in message
    assert 'make env' in message and 'Installation' in message


@pytest.mark.parametrize('package,version', [
    ('torch', '2.1.0'), ('torch', '2.1.2+cu121'), ('torch', '2.13.0+cu130'),
    ('mmcv', '2.1.0'), ('mmengine', '0.10.7'), ('mmdet', '3.3.0')])
def test_versions_inside_the_range_pass(package, version):
    compat.check_version(package, version)


def run_python(code):
    """``python -c code`` in the repository root, a fresh process."""
    return subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_import_refuses_a_faked_torch_version():
    """What a user with torch 2.0 sees: mmkdflow's message at import."""
    code = ('import torch; torch.__version__ = "2.0.1"\n'
            'import mmkdflow')
    result = run_python(code)
    assert result.returncode != 0
    assert 'mmkdflow.compat.VersionError: mmkdflow ' in result.stderr
    assert 'torch 2.0.1 is installed' in result.stderr
    assert 'torch >= 2.1.0, < 2.14.0' in result.stderr


def test_import_refuses_a_faked_mmengine_version():
    code = ('import mmengine; mmengine.__version__ = "0.11.2"\n'
            'import mmkdflow')
    result = run_python(code)
    assert result.returncode != 0
    assert 'mmengine 0.11.2 is installed' in result.stderr


def test_downstream_checked_only_when_imported(monkeypatch):
    monkeypatch.delitem(sys.modules, 'mmseg', raising=False)
    fake = type(sys)('mmdet')
    fake.__version__ = '3.1.0'
    monkeypatch.setitem(sys.modules, 'mmdet', fake)
    with pytest.raises(compat.VersionError, match='mmdet 3.1.0 is installed'):
        compat.check_downstream_versions()
    compat.check_downstream_versions(('mmseg',))  # not imported: no check


def test_distiller_build_refuses_an_unsupported_mmdet(monkeypatch):
    # the floor-lite environment (make test-floor-lite) has no mmdet
    mmdet = pytest.importorskip('mmdet')
    from utils import tiny_retinanet

    from mmkdflow.models import Distiller
    monkeypatch.setattr(mmdet, '__version__', '3.1.0')
    with pytest.raises(compat.VersionError) as info:
        Distiller(student=tiny_retinanet(8, 16))
    message = str(info.value)
    assert 'supports mmdet >= 3.3.0, < 3.4.0' in message
    assert 'mmdet 3.1.0 is installed' in message and 'Installation' in message


def test_import_imports_no_downstream_package():
    code = ('import sys, mmkdflow\n'
            'print(sorted(m for m in ("mmdet", "mmseg", "mmpretrain", '
            '"mmcv.ops") if m in sys.modules))')
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '[]'


def test_require_torch_names_feature_versions_and_fix(monkeypatch):
    import torch
    monkeypatch.setattr(torch, '__version__', '2.1.2+cu121')
    compat.require_torch('2.1.0', 'compile=True', 'TorchDynamo')
    with pytest.raises(RuntimeError) as info:
        compat.require_torch('2.4.0', 'compile=True',
                             'modules as compiled-graph inputs')
    message = str(info.value)
    assert message.startswith('compile=True needs torch >= 2.4.0 '
                              '(modules as compiled-graph inputs)')
    assert 'torch 2.1.2+cu121 is installed' in message
    assert 'turn compile off' in message


def test_compile_refused_below_its_torch_when_built(monkeypatch):
    import torch

    from mmkdflow.models.diffkd import DiffKDConnector
    from mmkdflow.models.utils.compile import COMPILE_MIN_TORCH
    monkeypatch.setattr(torch, '__version__', '2.1.2')
    with pytest.raises(RuntimeError) as info:
        DiffKDConnector(student_channels=8, teacher_channels=8,
                        compile=True)
    message = str(info.value)
    assert message.startswith(f'compile=True needs torch >= '
                              f'{COMPILE_MIN_TORCH}')
    assert 'torch 2.1.2 is installed' in message
    DiffKDConnector(student_channels=8, teacher_channels=8)  # compile off
    with pytest.raises(TypeError, match='compile must be a bool'):
        DiffKDConnector(student_channels=8, teacher_channels=8,
                        compile='yes')


def test_one_version_string():
    assert mmkdflow.__version__ == __version__
