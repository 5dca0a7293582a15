"""End to end with each downstream package: a Runner trains a teacher,
distills a student on the task's digits data, checkpoints, resumes, and the
exported student runs in the downstream package without mmkdflow.

* det: mmdet (the demo's ATSS config, run with tiny RetinaNets; the export
  keeps the config's ATSS student), PKD on the FPN, epoch-based;
* seg: mmseg DeepLabV3, CWD on the decode head's logits, iteration-based;
* cls: mmpretrain ResNet, Hinton KD on the head's logits, epoch-based.
"""
import os
import os.path as osp
import textwrap
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

import pytest
import torch
from utils import config_path, tiny_deeplabv3, tiny_resnet_cls, tiny_retinanet
from utils.e2e import run_tool, run_without_mmkdflow, shrink
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

pytestmark = pytest.mark.slow


@dataclass
class Task:
    """What differs between the three end-to-end runs.

    A *unit* is one epoch (``by_epoch``) or two iterations: the teacher
    trains one unit, the distiller two (a checkpoint after each) and the
    resumed run one more.
    """

    teacher_config: str
    distill_config: str
    tiny: Callable[..., dict]
    teacher_args: Tuple[int, ...]
    student_args: Tuple[int, ...]
    by_epoch: bool
    losses: Tuple[str, str]
    model_type: str
    scope: str
    val_images: str  # folder of validation images, under data_root
    output_shape: Tuple[int, ...]  # of the first predicted tensor
    iters_per_epoch: Optional[int] = None
    connectors: dict = field(default_factory=dict)  # point -> updates
    score_thr: Optional[float] = None

    @property
    def unit_iters(self) -> int:
        return 1 if self.by_epoch else 2

    @property
    def prefix(self) -> str:
        return 'epoch' if self.by_epoch else 'iter'

    def set_length(self, cfg: Config, units: int) -> None:
        if self.by_epoch:
            cfg.train_cfg.max_epochs = units
        else:
            cfg.train_cfg.max_iters = units * self.unit_iters
        cfg.train_cfg.val_interval = units * self.unit_iters
        cfg.default_hooks.checkpoint.interval = self.unit_iters
        cfg.param_scheduler = []

    def checkpoint(self, work_dir, units: int, suffix: str = '') -> str:
        return osp.join(str(work_dir),
                        f'{self.prefix}_{units * self.unit_iters}'
                        f'{suffix}.pth')


TASKS = dict(
    det=Task('teacher_atss-r18_fpn_1xb16-12e_digits-det.py',
             'pkd_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det.py',
             tiny_retinanet, (16, 32), (8, 16), True,
             ('distill.fpn.loss', 'student.loss_cls'),
             'ATSS', 'mmdet', 'val', (100, 4),
             connectors=dict(fpn=dict(in_channels=16, out_channels=32)),
             score_thr=0.),
    seg=Task('teacher_deeplabv3-r18_1xb8-600it_digits-seg.py',
             'cwd_deeplabv3-r18_deeplabv3-r18c16_1xb8-600it_digits-seg.py',
             tiny_deeplabv3, (16, ), (8, ), False,
             ('distill.logits.loss', 'student.decode.loss_ce'),
             'EncoderDecoder', 'mmseg', 'img_dir/val', (11, 64, 64)),
    cls=Task('teacher_resnet18_1xb32-10e_digits-cls.py',
             'kd_resnet18_resnet18c8_1xb32-10e_digits-cls.py',
             tiny_resnet_cls, (16, ), (8, ), True,
             ('distill.logits.loss', 'student.loss'),
             'ImageClassifier', 'mmpretrain', 'val/3', (10, ),
             iters_per_epoch=16),  # 64 training crops, batch 4
)


class _StepLog(Hook):
    """Remember the iteration at the start of every train step and
    ``(epoch, iter)`` at the start of every train epoch."""

    def __init__(self):
        self.iters, self.epoch_starts = [], []

    def before_train_epoch(self, runner):
        self.epoch_starts.append((runner.epoch, runner.iter))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.iters.append(runner.iter)


def _train(cfg: Config) -> Tuple[Runner, _StepLog]:
    runner = Runner.from_cfg(cfg)
    log = _StepLog()
    runner.register_hook(log)
    runner.train()
    return runner, log


# ---------------------------------------------- predictions, in each package
#: Per task, run in this process and in a fresh one without mmkdflow:
#: ``load(cfg, ckpt)`` builds the vanilla model, ``check(model)`` asserts
#: its dataset meta, ``predict(model, image)`` is the package's inference
#: API (mmpretrain's ``inference_model`` picks its inferencer from model-zoo
#: metadata, which a model built from a config file has not; the
#: ``ImageClassificationInferencer`` is the vanilla API behind it).
API = dict(
    det='''
        from mmdet.apis import inference_detector, init_detector

        def load(cfg, ckpt):
            return init_detector(cfg, ckpt, device='cpu')

        def check(model):
            assert model.dataset_meta['classes'][3] == '3'

        def predict(model, image):
            pred = inference_detector(model, image).pred_instances
            return dict(bboxes=pred.bboxes, scores=pred.scores)
    ''',
    seg='''
        from mmseg.apis import inference_model, init_model

        def load(cfg, ckpt):
            return init_model(cfg, ckpt, device='cpu')

        def check(model):
            assert model.dataset_meta['classes'][0] == 'background'
            assert model.dataset_meta['classes'][4] == '3'

        def predict(model, image):
            result = inference_model(model, image)
            return dict(logits=result.seg_logits.data,
                        labels=result.pred_sem_seg.data)
    ''',
    cls='''
        import torch
        from mmpretrain import get_model
        from mmpretrain.apis import ImageClassificationInferencer

        def load(cfg, ckpt):
            return get_model(cfg, pretrained=ckpt, device='cpu')

        def check(model):
            assert model._dataset_meta['classes'][3] == '3'

        def predict(model, image):
            result = ImageClassificationInferencer(model)(image)[0]
            return dict(scores=torch.from_numpy(result['pred_scores']),
                        label=int(result['pred_label']),
                        name=result.get('pred_class'))
    ''')

#: Load each exported checkpoint in the vanilla package and compare its
#: predictions with the distiller's student (``cfg``, ``ckpts``, ``image``
#: and ``expected`` are defined before).
VANILLA_LOAD = '''
for ckpt in ckpts:
    model = load(cfg, ckpt)
    check(model)
    got = predict(model, image)
    for key in ('bboxes', 'scores', 'logits', 'labels', 'label'):
        if key in expected:
            torch.testing.assert_close(got[key], expected[key])
    if 'name' in got:  # the class name of the predicted digit
        assert got['name'] == str(expected['label'])
    print('OK', tuple(got[list(expected)[0]].shape))
'''


def _package_api(task_name: str) -> dict:
    namespace = {}
    exec(textwrap.dedent(API[task_name]), namespace)
    return namespace


@pytest.mark.parametrize('task_name', list(TASKS))
def test_distill_resume_export(task_name, tmp_path):
    task = TASKS[task_name]
    data_root = str(tmp_path / f'digits_{task_name}')
    teacher_dir, work_dir = tmp_path / 'teacher', tmp_path / 'distill'

    # 1. the teacher, trained for one unit and checkpointed
    cfg = shrink(Config.fromfile(config_path('demo', task.teacher_config)),
                 task_name, data_root, str(teacher_dir))
    cfg.model = task.tiny(*task.teacher_args)
    task.set_length(cfg, 1)
    teacher_runner = Runner.from_cfg(cfg)
    teacher_runner.train()
    teacher_ckpt = task.checkpoint(teacher_dir, 1)
    assert osp.isfile(teacher_ckpt)
    teacher_state = {k: v.clone() for k, v in
                     teacher_runner.model.state_dict().items()}

    # 2. distillation for two units, a checkpoint after each
    distill_cfg_path = config_path('demo', task.distill_config)
    student = task.tiny(*task.student_args)
    if task.score_thr is not None:
        student['test_cfg']['score_thr'] = task.score_thr  # keep boxes

    def distill_cfg(units: int) -> Config:
        cfg = shrink(Config.fromfile(distill_cfg_path), task_name,
                     data_root, str(work_dir))
        cfg.model.student = student
        cfg.model.teacher = task.tiny(*task.teacher_args)
        cfg.model.teacher_ckpt = teacher_ckpt
        for point, updates in task.connectors.items():
            cfg.model.distill_points[point].connector.update(updates)
        task.set_length(cfg, units)
        cfg.default_hooks.checkpoint.max_keep_ckpts = 3
        return cfg

    runner, log = _train(distill_cfg(2))
    per_unit = len(runner.train_dataloader) if task.by_epoch \
        else task.unit_iters
    if task.iters_per_epoch is not None:
        assert per_unit == task.iters_per_epoch
    assert runner.iter == 2 * per_unit
    assert log.iters == list(range(2 * per_unit))
    if task.by_epoch:
        assert runner.epoch == 2
        assert log.epoch_starts == [(0, 0), (1, per_unit)]
    scalars = runner.message_hub.log_scalars
    for name in task.losses:
        assert f'train/{name}' in scalars
    assert 'val/time' in scalars  # the student was validated
    for key, value in runner.model.teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_state[key])
    for units in (1, 2):
        assert osp.isfile(task.checkpoint(work_dir, units))
        assert osp.isfile(task.checkpoint(work_dir, units, '_student'))

    # 3. resume from the second checkpoint (safe loading of mmengine's own
    # checkpoint): the run continues where it stopped
    resumed_cfg = distill_cfg(3)
    resumed_cfg.resume = True
    resumed_cfg.load_from = task.checkpoint(work_dir, 2)
    resumed, log = _train(resumed_cfg)
    assert log.iters == list(range(2 * per_unit, 3 * per_unit))
    assert resumed.iter == 3 * per_unit
    if task.by_epoch:
        assert resumed.epoch == 3
        assert log.epoch_starts == [(2, 2 * per_unit)]
    assert osp.isfile(task.checkpoint(work_dir, 3))
    assert osp.isfile(task.checkpoint(work_dir, 3, '_student'))
    for key, value in resumed.model.teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_state[key])

    # 4. export with the tool and load in the plain package without mmkdflow
    out = str(tmp_path / 'export' / 'student.pth')
    student_cfg_path = osp.splitext(out)[0] + '.py'
    run_tool('tools/export_student.py', distill_cfg_path,
             task.checkpoint(work_dir, 3), out)
    student_cfg = Config.fromfile(student_cfg_path)
    assert student_cfg.model.type == task.model_type
    assert student_cfg.default_scope == task.scope
    # the export tool keeps the config's student (the demo size); write the
    # tiny student of this test for the vanilla load
    student_cfg.model = Config(dict(m=student)).m
    student_cfg.model.pop('_scope_')
    student_cfg.dump(student_cfg_path)
    val_dir = osp.join(data_root, task.val_images)
    image = osp.join(val_dir, sorted(
        f for f in os.listdir(val_dir) if f.endswith('.png'))[0])

    distiller = resumed.model
    distiller.eval()
    student = distiller.student
    # the inference APIs read the model's config (mmpretrain: _config)
    student.cfg = student._config = Config.fromfile(student_cfg_path)
    expected = _package_api(task_name)['predict'](student, image)
    expected.pop('name', None)  # the student has no dataset meta here
    assert tuple(expected[list(expected)[0]].shape) == task.output_shape
    torch.save(expected, str(tmp_path / 'expected.pth'))
    # both the exported file and the hook's file, in one fresh interpreter
    ckpts = [out, task.checkpoint(work_dir, 3, '_student')]
    printed = run_without_mmkdflow(
        'import torch\n' + textwrap.dedent(API[task_name]) +
        f'expected = torch.load({str(tmp_path / "expected.pth")!r})\n'
        f'cfg, image = {student_cfg_path!r}, {image!r}\n'
        f'ckpts = {ckpts!r}\n' + VANILLA_LOAD)
    assert printed.count(f'OK {task.output_shape}') == 2
