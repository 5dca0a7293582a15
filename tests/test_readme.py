"""The README's examples are real: every Python block parses, and every
config example builds (with a local teacher checkpoint in place of the
official URL)."""
import ast
import copy
import os.path as osp
import re

import pytest
import torch
from conftest import ROOT
from mmengine.config import Config

README = osp.join(ROOT, 'README.md')


def python_blocks() -> list:
    """``(first line number, source)`` of every fenced ``python`` block."""
    with open(README) as f:
        text = f.read()
    blocks = []
    for match in re.finditer(r'^```python\n(.*?)^```', text, re.M | re.S):
        line = text[:match.start()].count('\n') + 2
        blocks.append((line, match.group(1)))
    return blocks


def test_every_python_block_parses():
    blocks = python_blocks()
    assert len(blocks) >= 3
    for line, source in blocks:
        try:
            ast.parse(source)
        except SyntaxError as err:
            pytest.fail(f'README.md line {line + (err.lineno or 1) - 1}: '
                        f'{err.msg}')


def config_blocks(tmp_path) -> list:
    """The README's config examples as ``Config`` objects: full configs
    (a ``model`` or ``_base_``) as they are, ``distill_points`` fragments
    merged into the first full one."""
    configs, fragments = [], []
    for line, source in python_blocks():
        names = {t.id for node in ast.parse(source).body
                 if isinstance(node, ast.Assign) for t in node.targets
                 if isinstance(t, ast.Name)}
        path = str(tmp_path / f'readme_line{line}.py')
        with open(path, 'w') as f:
            f.write(source)
        if 'model' in names:
            configs.append((line, Config.fromfile(path)))
        elif 'distill_points' in names:
            fragments.append((line, Config.fromfile(path)))
    assert configs, 'no config example in the README'
    for line, fragment in fragments:
        cfg = copy.deepcopy(configs[0][1])
        cfg.model.distill_points = fragment.distill_points
        if fragment.get('custom_hooks'):
            cfg.custom_hooks = fragment.custom_hooks
        configs.append((line, cfg))
    return configs


@pytest.mark.slow
def test_every_config_example_builds(tmp_path):
    from mmengine.model import revert_sync_batchnorm

    from mmkdflow.models.utils.model_builder import build_task_model
    from mmkdflow.registry import HOOKS, MODELS
    saved = {}
    configs = config_blocks(tmp_path)
    assert len(configs) >= 3, [line for line, _ in configs]
    for line, cfg in configs:
        model_cfg = copy.deepcopy(cfg.model)
        assert model_cfg.teacher_ckpt.startswith('https://'), line
        key = str(model_cfg.teacher)
        if key not in saved:  # one local checkpoint per teacher
            teacher = build_task_model(model_cfg.teacher, 'teacher',
                                       cfg.get('data_preprocessor'))
            saved[key] = str(tmp_path / f'teacher{len(saved)}.pth')
            torch.save({'state_dict': teacher.state_dict()}, saved[key])
            del teacher
        model_cfg.teacher_ckpt = saved[key]
        model = revert_sync_batchnorm(MODELS.build(model_cfg))
        assert type(model).__name__ == 'Distiller', line
        assert [p.name for p in model.points] == list(
            cfg.model.distill_points), line
        for hook in cfg.get('custom_hooks', []):
            HOOKS.build(copy.deepcopy(hook))
        del model
