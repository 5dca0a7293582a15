"""tools/demo.py: every method of a task trains under one schedule, and the
table's numbers follow their formulas (the training itself is `make demo`;
the Runner end-to-end runs on these configs are in test_e2e_*.py)."""
import importlib.util
import json
import os.path as osp
import statistics

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_demo():
    spec = importlib.util.spec_from_file_location(
        'mmkdflow_demo_tool', osp.join(ROOT, 'tools', 'demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = load_demo()


def schedule(cfg: Config) -> dict:
    cfg = cfg.to_dict()
    keys = ('optim_wrapper', 'param_scheduler', 'train_cfg', 'randomness')
    return dict({k: cfg.get(k) for k in keys},
                batch_size=cfg['train_dataloader']['batch_size'],
                dataset=cfg['train_dataloader']['dataset'])


@pytest.mark.parametrize('task', sorted(demo.TASKS))
def test_every_method_trains_under_the_same_schedule(task):
    methods = demo.TASKS[task]['methods']
    configs = {m: Config.fromfile(osp.join(demo.DEMO, file))
               for m, (_, file) in methods.items()}
    alone = schedule(configs['student'])
    for method, cfg in configs.items():
        assert schedule(cfg) == alone, method
        student = cfg.model.get('student')
        if student is not None:  # the distilled student is the one alone
            assert osp.basename(student['cfg_path']) == \
                methods['student'][1], method


def test_det_students_schedule():
    cfg = Config.fromfile(osp.join(demo.DEMO, demo.TASKS['det']['methods']
                                   ['student'][1]))
    teacher = Config.fromfile(osp.join(demo.DEMO,
                                       demo.TASKS['det']['teacher']))
    assert cfg.train_dataloader.batch_size == 4
    # the teacher's learning rate scaled linearly with the batch
    assert cfg.optim_wrapper.optimizer.lr * 16 / 4 == \
        teacher.optim_wrapper.optimizer.lr
    assert cfg.train_cfg.max_epochs == 5


def test_summary_rows_follow_their_formulas():
    task = demo.TASKS['det']
    runs = {
        'student': [dict(m=0.10, t=0.05), dict(m=0.12, t=0.07)],
        'pkd': [dict(m=0.20, t=0.12), dict(m=0.16, t=0.12)],
    }
    results = {name: [{task['metric']: r['m'], 'iter_time': r['t']}
                      for r in rs] for name, rs in runs.items()}
    rows = demo.summarise(task, {task['metric']: 0.31}, results)
    assert [r['label'] for r in rows] == [
        'teacher', 'student alone', '+ PKD on FPN (feature KD)']
    teacher, student, pkd = rows
    assert teacher['mean'] == pytest.approx(31.0)
    assert student['mean'] == pytest.approx(11.0)
    assert student['spread'] == pytest.approx(statistics.stdev([10, 12]))
    assert student['gap'] is None and student['rel_time'] == 1.0
    assert pkd['mean'] == pytest.approx(18.0)
    # share of the teacher-student gap closed: (18 - 11) / (31 - 11)
    assert pkd['gap'] == pytest.approx(35.0)
    assert pkd['rel_time'] == pytest.approx(0.12 / 0.06)
    table = demo.markdown_table('T', 'mAP', rows, seeds=2)
    assert '| + PKD on FPN (feature KD) | 18.0 ± 2.8 | 35% | 2.00x |' in table
    assert table.startswith('T (2 seeds)')


def test_last_metrics_and_chart(tmp_path):
    run = tmp_path / '20260101_000000' / 'vis_data'
    run.mkdir(parents=True)
    records = [dict(loss=1.0, time=9.0, iter=10),  # warm-up window
               dict(loss=0.9, time=0.2, iter=20),
               dict(loss=0.8, time=0.4, iter=30),
               {'coco/bbox_mAP': 0.25, 'step': 3}]
    (run / 'scalars.json').write_text(
        '\n'.join(json.dumps(r) for r in records))
    metrics = demo._last_metrics(str(tmp_path), 'coco/bbox_mAP')
    assert metrics['coco/bbox_mAP'] == 0.25
    assert metrics['iter_time'] == pytest.approx(0.3)  # median, warm-up out
    with pytest.raises(RuntimeError, match='no accuracy/top1'):
        demo._last_metrics(str(tmp_path), 'accuracy/top1')
    rows = [dict(label='teacher', mean=30., spread=0.),
            dict(label='student alone', mean=10., spread=1.),
            dict(label='+ KD', mean=15., spread=2.)]
    png = tmp_path / 'chart.png'
    demo.bar_chart('T', 'mAP', rows, str(png))
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_progress_line():
    line = ('2026/11/22 23:36:01 - mmengine - INFO - Epoch(train)  [2][ 10/200]'
            '  lr: 5.0000e-03  eta: 0:01:00  time: 0.0500  loss: 1.0821  '
            'loss_cls: 0.8000')
    assert demo._progress(line) == 'epoch [2][10/200]  loss 1.0821'
    assert demo._progress('Iter(train) [30/100]  lr: 1e-3  loss: 2.5') == \
        'iter [30/100]  loss 2.5'
    assert demo._progress('Epoch(val) [5][13/13]  coco/bbox_mAP: 0.1') is None
