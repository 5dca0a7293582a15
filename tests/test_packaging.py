"""An installed mmkdflow carries its configs and tools in ``mmkdflow/.mim``,
as mmdet and MMRazor do, so ``mmkdflow::`` bases resolve from an editable
install and from a wheel alike."""
import os.path as osp
import subprocess
import sys
import zipfile

import pytest
from utils import ROOT

RUNTIME = '_base_/default_runtime_distill.py'


def test_the_imported_package_is_where_mmengine_looks():
    """MMEngine finds ``.mim`` through ``MODULE2PACKAGE``: for mmkdflow
    that is the imported package's folder, also for an editable (PEP 660)
    install, whose distribution lies in site-packages without it."""
    from mmengine.config.utils import MODULE2PACKAGE
    from mmengine.utils import get_installed_path

    import mmkdflow
    path = get_installed_path(MODULE2PACKAGE['mmkdflow'])
    assert path == osp.dirname(mmkdflow.__file__)
    assert osp.isfile(osp.join(path, '.mim', 'configs', RUNTIME))
    assert osp.isfile(osp.join(path, '.mim', 'model-index.yml'))
    assert osp.isfile(osp.join(path, '.mim', 'tools', 'train.py'))


@pytest.mark.slow
def test_a_wheel_ships_mim_and_resolves_mmkdflow_bases(tmp_path):
    """``pip wheel .`` copies configs/, tools/ and model-index.yml into
    ``mmkdflow/.mim``; installed with ``--target``, a user config with an
    ``mmkdflow::`` base resolves to the installed copy."""
    pip = [sys.executable, '-m', 'pip']
    subprocess.run(pip + ['wheel', '--no-deps', '--no-build-isolation',
                          '-q', '-w', str(tmp_path / 'dist'), ROOT],
                   check=True, cwd=tmp_path)
    wheel, = (tmp_path / 'dist').glob('mmkdflow-*.whl')
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (f'mmkdflow/.mim/configs/{RUNTIME}',
                 'mmkdflow/.mim/configs/fmkt/retinanet_x101_r50.py',
                 'mmkdflow/.mim/tools/train.py',
                 'mmkdflow/.mim/model-index.yml'):
        assert name in names, name
    assert not any('__pycache__' in n for n in names)
    assert not any(n.startswith('mmkdflow_tools') for n in names)
    site = tmp_path / 'site'
    subprocess.run(pip + ['install', '--no-deps', '-q', '--target',
                          str(site), str(wheel)], check=True, cwd=tmp_path)
    # a mark on the installed copy shows which file was read
    installed = site / 'mmkdflow' / '.mim' / 'configs' / RUNTIME
    installed.write_text(installed.read_text() + "\nmarker = 'wheel'\n")
    user = tmp_path / 'mine.py'
    user.write_text(f"_base_ = ['mmkdflow::{RUNTIME}']\n")
    script = (
        'import mmkdflow\n'
        'from mmengine.config import Config\n'
        f'cfg = Config.fromfile({str(user)!r})\n'
        'print(mmkdflow.__file__)\n'
        'print([h.type for h in cfg.custom_hooks], cfg.marker)\n')
    out = subprocess.run(
        [sys.executable, '-c', script], capture_output=True, text=True,
        cwd=tmp_path, env={'PYTHONPATH': str(site), 'PATH': '/usr/bin'})
    assert out.returncode == 0, out.stderr
    package, hooks = out.stdout.split('\n')[:2]
    assert package.startswith(str(site))
    assert 'mmkdflow.SafeTrainingHook' in hooks and hooks.endswith('wheel')
