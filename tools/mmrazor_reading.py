"""Reading an MMRazor 1.x config without importing MMRazor, for
``tools/convert_mmrazor_config.py``.

The config and its local ``_base_`` files are copied to a temporary folder
with the package names rewritten, then read with
``mmengine.Config.fromfile``. ``mmdet::`` and ``mmseg::`` stay; ``mmcls::``
becomes ``mmpretrain::`` (mmcls 1.x was renamed), and the config files
renamed since are mapped by :data:`CONFIG_RENAMES`.
"""
import ast
import os
import os.path as osp
import re
import tempfile
from typing import Dict, List, Tuple

from mmengine.config import Config

from mmrazor_mapping import ConversionError, refusal

#: Packages MMRazor configs name that mmkdflow reaches, and their names now.
PACKAGES = {'mmdet': 'mmdet', 'mmseg': 'mmseg', 'mmcls': 'mmpretrain',
            'mmpretrain': 'mmpretrain'}
#: Package configs renamed since MMRazor 1.0.0 was released.
CONFIG_RENAMES = {
    'mmdet::faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py':
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    'mmdet::faster_rcnn/faster_rcnn_r101_fpn_2x_coco.py':
    'mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py',
    'mmpretrain::deit/deit-base_pt-16xb64_in1k.py':
    'mmpretrain::deit/deit-base_16xb64_in1k.py',
}
_PACKAGE_NAME = re.compile(r"""(['"])(mmcls|mmdet|mmseg|mmpretrain|mmdet3d"""
                           r"""|mmyolo|mmrazor)::([^'"]*)\1""")


def rename(name: str) -> str:
    """A package config name as the installed packages call it."""
    package, _, path = name.partition('::')
    if package not in PACKAGES:
        raise ConversionError(refusal(
            f'package config {name!r} ({package} is not a package mmkdflow '
            f'distils)', 'a config of mmdet, mmseg or mmpretrain'))
    name = f'{PACKAGES[package]}::{path}'
    return CONFIG_RENAMES.get(name, name)


def _rewrite(text: str) -> str:
    text = _PACKAGE_NAME.sub(
        lambda m: m.group(1) + rename(f'{m.group(2)}::{m.group(3)}') +
        m.group(1), text)
    return re.sub(r"""(['"])mmcls([.'"])""", r'\1mmpretrain\2', text)


def _bases(path: str, text: str) -> List[str]:
    for node in ast.parse(text, path).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_'
                for t in node.targets):
            value = ast.literal_eval(node.value)
            return [value] if isinstance(value, str) else list(value)
    return []


def read_mmrazor_config(path: str) -> Tuple[Config, List[str]]:
    """The resolved MMRazor config and its package bases (renamed), in the
    order MMEngine merges them."""
    files: Dict[str, str] = {}
    packages: List[str] = []

    def walk(file: str) -> None:
        with open(file, encoding='utf-8') as f:
            text = f.read()
        files[file] = _rewrite(text)
        for base in _bases(file, text):
            if '::' in base:
                if rename(base) not in packages:
                    packages.append(rename(base))
                continue
            local = osp.normpath(osp.join(osp.dirname(file), base))
            if not osp.isfile(local):
                raise ConversionError(refusal(
                    f'local base {base!r} of {file} (not found)',
                    'the MMRazor configs folder it belongs to'))
            walk(local)

    walk(osp.abspath(path))
    root = osp.commonpath([osp.dirname(f) for f in files])
    with tempfile.TemporaryDirectory() as tmp:
        for file, text in files.items():
            copy = osp.join(tmp, osp.relpath(file, root))
            os.makedirs(osp.dirname(copy), exist_ok=True)
            with open(copy, 'w', encoding='utf-8') as f:
                f.write(text)
        cfg = Config.fromfile(
            osp.join(tmp, osp.relpath(osp.abspath(path), root)))
    return cfg, packages


def read_bases(packages: List[str]) -> Config:
    """The config of the package bases alone."""
    with tempfile.TemporaryDirectory() as tmp:
        file = osp.join(tmp, 'bases.py')
        with open(file, 'w') as f:
            f.write(f'_base_ = {packages!r}\n')
        return Config.fromfile(file)
