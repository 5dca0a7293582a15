"""The documentation's examples are real: every Python block of every
Markdown page (README.md, docs/, configs/) parses, every config example
builds (with a local teacher checkpoint in place of the official URL), and
every config that inherits a shipped one resolves."""
import ast
import copy
import glob
import os
import os.path as osp
import re

import pytest
import torch
from utils import ROOT
from mmengine.config import Config

PAGES = sorted(
    osp.relpath(p, ROOT) for p in
    [osp.join(ROOT, 'README.md')] +
    glob.glob(osp.join(ROOT, 'docs', '**', '*.md'), recursive=True) +
    glob.glob(osp.join(ROOT, 'configs', '**', '*.md'), recursive=True))


def python_blocks() -> list:
    """``(page, first line number, source)`` of every fenced ``python``
    block of every page."""
    blocks = []
    for page in PAGES:
        with open(osp.join(ROOT, page), encoding='utf-8') as f:
            text = f.read()
        for match in re.finditer(r'^```python\n(.*?)^```', text,
                                 re.M | re.S):
            line = text[:match.start()].count('\n') + 2
            blocks.append((page, line, match.group(1)))
    return blocks


def test_every_python_block_parses():
    blocks = python_blocks()
    assert len(blocks) >= 3 and any(b[0] == 'README.md' for b in blocks)
    assert {b[0] for b in blocks} > {'README.md'}  # docs/ has examples
    for page, line, source in blocks:
        try:
            ast.parse(source)
        except SyntaxError as err:
            pytest.fail(f'{page} line {line + (err.lineno or 1) - 1}: '
                        f'{err.msg}')


def block_file(tmp_path, page: str, line: int, source: str) -> str:
    """The block written where its page lies, in a copy of the tree whose
    ``configs`` is the repository's, so relative ``_base_`` paths work."""
    tree = tmp_path / 'pages'
    if not osp.exists(tree / 'configs'):
        tree.mkdir(exist_ok=True)
        os.symlink(osp.join(ROOT, 'configs'), tree / 'configs')
    folder = tree / osp.dirname(page)
    folder.mkdir(parents=True, exist_ok=True)
    name = re.sub(r'\W', '_', osp.basename(page))
    path = str(folder / f'{name}_line{line}.py')
    with open(path, 'w') as f:
        f.write(source)
    return path


def assigned_names(source: str) -> set:
    return {t.id for node in ast.parse(source).body
            if isinstance(node, ast.Assign) for t in node.targets
            if isinstance(t, ast.Name)}


def config_blocks(tmp_path) -> list:
    """The config examples as ``Config`` objects: full configs (a
    ``model``) as they are, ``distill_points`` fragments merged into the
    first full one."""
    configs, fragments = [], []
    for page, line, source in python_blocks():
        names = assigned_names(source)
        where = f'{page}:{line}'
        if 'model' in names:
            configs.append((where, Config.fromfile(
                block_file(tmp_path, page, line, source))))
        elif 'distill_points' in names:
            fragments.append((where, Config.fromfile(
                block_file(tmp_path, page, line, source))))
    assert configs, 'no config example in the docs'
    for where, fragment in fragments:
        cfg = copy.deepcopy(configs[0][1])
        cfg.model.distill_points = fragment.distill_points
        if fragment.get('custom_hooks'):
            cfg.custom_hooks = fragment.custom_hooks
        configs.append((where, cfg))
    return configs


def test_configs_inheriting_a_shipped_one_resolve(tmp_path):
    """Examples with a ``_base_`` and no ``model`` of their own load: on
    top of the shipped config they name (logging backends, ...), or beside
    a task config with the distillation runtime's hooks first."""
    from mmengine.registry import VISUALIZERS  # noqa: F401
    found = 0
    for page, line, source in python_blocks():
        names = assigned_names(source)
        if '_base_' in names and 'model' not in names:
            cfg = Config.fromfile(block_file(tmp_path, page, line, source))
            if 'default_runtime_distill.py' in source:
                assert cfg.custom_hooks[0].type == \
                    'mmkdflow.SafeTrainingHook', f'{page}:{line}'
            else:
                assert cfg.model.type == 'Distiller', f'{page}:{line}'
            for backend in cfg.get('vis_backends', []):
                assert backend['type'].endswith('VisBackend')
            found += 1
    assert found >= 1


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
