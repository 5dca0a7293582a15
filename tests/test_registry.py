"""Registries: scope, locations, and configs that reach mmkdflow."""
import subprocess
import sys
import textwrap

import pytest

from utils import ROOT
from mmengine.registry import DATASETS as ROOT_DATASETS
from mmengine.registry import HOOKS as ROOT_HOOKS
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import OPTIM_WRAPPERS as ROOT_OPTIM_WRAPPERS

from mmkdflow.registry import DATASETS, HOOKS, MODELS, OPTIM_WRAPPERS

#: One module of each registry, as (root registry, child, name).
EXAMPLES = ((ROOT_MODELS, MODELS, 'PKDLoss'),
            (ROOT_HOOKS, HOOKS, 'SafeCheckpointHook'),
            (ROOT_DATASETS, DATASETS, 'DigitsDetDataset'),
            (ROOT_OPTIM_WRAPPERS, OPTIM_WRAPPERS, 'AutocastOptimWrapper'))


def test_child_registries_reach_their_modules_from_the_root():
    for root, registry, name in EXAMPLES:
        assert registry.scope == 'mmkdflow'
        assert registry.parent is root
        found = registry.get(name)
        assert found is not None and found.__name__ == name
        assert root.get(f'mmkdflow.{name}') is found


def test_registries_need_no_import_of_mmkdflow_first():
    """In a fresh interpreter that never imported mmkdflow, each root
    registry resolves ``mmkdflow.<name>`` (the registry imports what
    registers it)."""
    names = ', '.join(f'({root.name!r}, {name!r})'
                      for root, _, name in EXAMPLES)
    out = _run_fresh(f'''
        import sys
        from mmengine import registry
        roots = dict(model=registry.MODELS, hook=registry.HOOKS,
                     dataset=registry.DATASETS,
                     optim_wrapper=registry.OPTIM_WRAPPERS)
        assert 'mmkdflow' not in sys.modules
        found = [roots[kind].get('mmkdflow.' + name).__name__ == name
                 for kind, name in [{names}]]
        print(all(found), len(found))
        ''')
    assert out.split() == ['True', str(len(EXAMPLES))]


def _run_fresh(code: str) -> str:
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


MODEL = '''
student = dict(
    type='RetinaNet', _scope_='mmdet',
    data_preprocessor=dict(type='DetDataPreprocessor'),
    backbone=dict(type='ResNet', depth=18, base_channels=8,
                  out_indices=(1, 2, 3), norm_eval=False, init_cfg=None),
    neck=dict(type='FPN', in_channels=[16, 32, 64], out_channels=16,
              num_outs=5, add_extra_convs='on_input'),
    bbox_head=dict(
        type='RetinaHead', num_classes=10, in_channels=16, stacked_convs=1,
        feat_channels=16,
        anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                              scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                              strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder'),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True),
        loss_bbox=dict(type='L1Loss')))
'''


def test_custom_imports_config_in_fresh_process(tmp_path):
    cfg = tmp_path / 'distill.py'
    cfg.write_text(MODEL + textwrap.dedent('''
        custom_imports = dict(imports=['mmkdflow'], allow_failed_imports=False)
        default_scope = 'mmdet'
        model = dict(type='mmkdflow.Distiller', student=student,
                     teacher=student, allow_random_teacher=True,
                     distill_points=dict(fpn=dict(
                         student='neck', teacher='neck', index=0,
                         loss=dict(type='PKDLoss'))))
        '''))
    out = _run_fresh(f'''
        import sys
        assert 'mmkdflow' not in sys.modules
        from mmengine.config import Config
        from mmengine.registry import MODELS, DefaultScope
        cfg = Config.fromfile({str(cfg)!r})
        DefaultScope.get_instance('t', scope_name=cfg.default_scope)
        model = MODELS.build(cfg.model)
        print(type(model).__name__,
              type(model.distill_losses['fpn']).__module__)
        ''')
    assert out.split() == ['Distiller', 'mmkdflow.models.losses.pkd_loss']


@pytest.mark.parametrize('type_name', ['Distiller'])
def test_scope_key_alone_reaches_mmkdflow_in_fresh_process(type_name):
    """``_scope_='mmkdflow'`` alone imports mmkdflow and builds the
    distiller in a process that never imported it."""
    out = _run_fresh(MODEL + f'''
import sys
from mmengine.registry import MODELS
model = MODELS.build(dict(_scope_='mmkdflow', type={type_name!r},
                          student=student))
print(type(model).__name__, 'mmkdflow' in sys.modules)
''')
    assert out.split() == ['Distiller', 'True']
