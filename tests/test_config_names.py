"""Config file names follow one scheme, and the kept former name of the
users' first config resolves to the same config as its new name.

The scheme (docs/user_guide.md, "Config names"), OpenMMLab's
``{method}_{teacher}_{student}_{schedule}_{dataset}.py``:

* distillation with a teacher: five fields, e.g.
  ``fmkt_retinanet-x101_retinanet-r50_fpn_2x_coco.py``;
* no teacher (OFM-KT) and single models of the demo (``teacher``,
  ``student`` alone, backbone ``pretrain``): four fields, the role in the
  method's place, e.g. ``teacher_atss-r18_fpn_1xb16-12e_digits-det.py``;
* words inside a field are joined by ``-``, fields by ``_``; the schedule
  part may hold more than one field, as the student's own mmdet / mmseg /
  mmpretrain config name does (``fpn_gn-head_ms-640-800-2x``).
"""
import glob
import os.path as osp
import re

import pytest
from utils import CONFIGS, config_path
from mmengine.config import Config

#: former name -> the config it inherits, unchanged (an alias file)
ALIASES = {
    'fmkt/retinanet_x101_r50.py':
    'fmkt/fmkt_retinanet-x101_retinanet-r50_fpn_2x_coco.py',
}
METHODS = ('fmkt', 'fmkt-theta', 'ofmkt', 'diffkd', 'diffkd-dist',
           'diffkd-attnmse', 'kd', 'pkd', 'cwd')
ROLES = ('teacher', 'student', 'pretrain')
DATASETS = ('coco', 'in1k', 'cifar100', 'cityscapes-512x1024', 'digits-det',
            'digits-seg', 'digits-cls')
WORD = r'[a-z0-9]+(?:-[a-z0-9]+)*'  # one field: words joined by '-'


def shipped() -> list:
    return sorted(
        osp.relpath(p, CONFIGS) for p in glob.glob(osp.join(CONFIGS, '*',
                                                           '*.py'))
        if not p.startswith(osp.join(CONFIGS, '_base_')))


def name_fields(name: str):
    """``(kind, fields)`` of a file name, or ``None`` if it does not follow
    the scheme."""
    stem, ext = osp.splitext(name)
    fields = stem.split('_')
    if ext != '.py' or not all(re.fullmatch(WORD, f) for f in fields):
        return None
    if fields[-1] not in DATASETS or len(fields) < 4:
        return None
    if fields[0] in ROLES or fields[0] == 'ofmkt':
        return 'single', fields
    if fields[0] in METHODS and len(fields) >= 5:
        return 'distill', fields
    return None


@pytest.mark.parametrize(
    'path', [p for p in shipped() if p not in ALIASES])  # aliases: below
def test_config_name_follows_the_scheme(path):
    assert name_fields(osp.basename(path)) is not None, (
        f'{path}: not {{method}}_{{teacher}}_{{student}}_{{schedule}}_'
        f'{{dataset}}.py (see this module docstring)')


def test_scheme_rejects_the_former_names():
    for name in ('retinanet_x101_r50.py', 'resnet34_resnet18_in1k_theta.py',
                 'fmkt_retinanet_r18_r18c16_digits.py',
                 'retinanet_r18_digits_teacher.py'):
        assert name_fields(name) is None, name


def _resolved(path: str) -> dict:
    """The config as the Runner sees it, without the keys that name the
    file it was read from."""
    cfg = Config.fromfile(config_path(path)).to_dict()
    for key in ('filename', 'text', 'pretty_text', 'work_dir'):
        cfg.pop(key, None)
    return cfg


@pytest.mark.parametrize('alias', sorted(ALIASES))
def test_alias_resolves_to_the_renamed_config(alias):
    target = ALIASES[alias]
    assert osp.isfile(config_path(alias)) and osp.isfile(config_path(target))
    with open(config_path(alias)) as f:
        assert f"_base_ = './{osp.basename(target)}'" in f.read()
    assert _resolved(alias) == _resolved(target)
