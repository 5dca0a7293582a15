"""Fixtures shared by the test files: the default-scope isolation, small
digits data, test-only registrations and locally saved random teachers.
The helpers the tests import live in ``tests/utils``."""
import os
import os.path as osp
import sys

import pytest
import torch

import mmkdflow  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the tools' own package (mmkdflow_tools), as the scripts in tools/ see it;
# appended, so that tools/test.py never shadows the standard library's test
sys.path.append(osp.join(ROOT, 'tools'))

from utils import save_random_teacher, tiny_retinanet  # noqa: E402

torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS') or
                          max(1, min(2, os.cpu_count() or 1))))


@pytest.fixture(autouse=True)
def isolate_default_scope():
    """Runners create ``DefaultScope`` instances (mmdet, mmseg, ...) that
    outlive their test and would change how later tests resolve registry
    names; restore the set of instances after every test.

    MMEngine has no public call that removes an instance (its own
    ``DefaultScope.overwrite_default_scope`` restores the same private
    dict, but only around a scope it sets), so this fixture is the one
    place of the suite that touches ``DefaultScope``'s internals; no test
    asserts on them."""
    from mmengine.registry import DefaultScope
    before = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(before)


@pytest.fixture(scope='session')
def digits_det(tmp_path_factory):
    """``digits_det(**options) -> root``: a DigitsDet folder built by
    :func:`~mmkdflow.datasets.build_digits_det` with ``seed=0`` and
    ``options``, once per session for each set of options. Tests that
    change files work on a copy."""
    from mmkdflow.datasets import build_digits_det
    roots = {}

    def build(**options) -> str:
        options = dict(dict(seed=0), **options)
        key = tuple(sorted(options.items()))
        if key not in roots:
            folder = tmp_path_factory.mktemp('digits') / 'digits_det'
            roots[key] = str(build_digits_det(str(folder), **options))
        return roots[key]

    return build


@pytest.fixture
def registered_for_test():
    """``registered_for_test(registry, cls) -> cls``: register a test-only
    module under its class name for one test, and remove it afterwards, so
    the real registries hold nothing of the tests (the name must be
    free)."""
    added = []

    def register(registry, cls):
        if registry.get(cls.__name__) is not None:
            raise KeyError(f'{cls.__name__} is already registered in '
                           f'{registry.name}; pick another test name')
        registry.register_module(module=cls)
        added.append((registry, cls.__name__))
        return cls

    yield register
    for registry, name in added:
        registry.module_dict.pop(name, None)


@pytest.fixture
def det_models():
    return tiny_retinanet(8, 16), tiny_retinanet(16, 32)


@pytest.fixture
def saved_teacher(tmp_path):
    """``saved_teacher(model_cfg, name='teacher.pth', seed=1) -> (path,
    state_dict)``: :func:`save_random_teacher` into the test's folder."""

    def save(model_cfg: dict, name: str = 'teacher.pth', seed: int = 1):
        path = str(tmp_path / name)
        return path, save_random_teacher(model_cfg, path, seed=seed)

    return save
