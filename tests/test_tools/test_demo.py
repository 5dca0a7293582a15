"""tools/demo.py: every method of a task trains under one schedule from the
same pretrained backbone, the backbone / teacher caches are invalidated when
their config changes, the tuning and smoke options are valid, and (slow) the
numbers the demo prints are the values in each run's own log."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from utils.e2e import ROOT, load_tool
from mmengine.config import Config, DictAction

import mmkdflow_tools.demo as demo_lib
import mmkdflow_tools.demo.training as demo_training

demo = load_tool('demo')


def schedule(cfg: Config) -> dict:
    cfg = cfg.to_dict()
    keys = ('optim_wrapper', 'param_scheduler', 'train_cfg', 'randomness')
    return dict({k: cfg.get(k) for k in keys},
                batch_size=cfg['train_dataloader']['batch_size'],
                dataset=cfg['train_dataloader']['dataset'])


def with_options(cfg: Config, options) -> Config:
    """Apply ``key=value`` strings as ``--cfg-options`` would."""
    parsed = {}
    for option in options:
        key, value = option.split('=', 1)
        parsed[key] = DictAction._parse_iterable(value)
    cfg.merge_from_dict(parsed)
    return cfg


@pytest.mark.parametrize('task', sorted(demo.TASKS))
def test_every_method_trains_under_the_same_schedule(task):
    methods = demo.TASKS[task]['methods']
    assert demo.TASKS[task]['baseline'] in methods
    configs = {m: Config.fromfile(osp.join(demo.DEMO, file))
               for m, (_, file) in methods.items()}
    alone = schedule(configs['student'])
    for method, cfg in configs.items():
        assert schedule(cfg) == alone, method
        student = cfg.model.get('student')
        if student is not None:  # the distilled student is the one alone
            assert osp.basename(student['cfg_path']) == \
                methods['student'][1], method
        if demo.TASKS[task]['backbones']:
            # every student starts from the pretrained backbone
            option = demo_lib.backbone_option(cfg, '/x/b.pth')
            assert option.endswith('backbone.init_cfg.checkpoint=/x/b.pth')


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_backbone_pretraining_matches_the_models(task):
    """The pretrained classifier's backbone is the detector's / segmenter's
    backbone (same type and arguments), so its weights load one to one."""
    spec = demo.TASKS[task]
    for role, file in spec['backbones'].items():
        pre = Config.fromfile(osp.join(demo.DEMO, file)).model.backbone
        model_file = spec['teacher'] if role == 'teacher' \
            else spec['methods']['student'][1]
        model = Config.fromfile(osp.join(demo.DEMO, model_file)).model
        target = dict(model.backbone)
        pre = dict(pre)
        assert pre.pop('type').split('.')[-1] == target.pop('type')
        assert target.pop('init_cfg')['type'] == 'Pretrained'
        pre.pop('init_cfg', None)
        assert pre.pop('out_indices') == (3, )
        target.pop('out_indices')
        assert pre == target, (role, file)


def test_backbone_option_refuses_a_scratch_student(tmp_path):
    cfg = Config.fromfile(osp.join(
        demo.DEMO, 'student_atss-r18c8_fpn_1xb16-8e_digits-det.py'))
    cfg.model.backbone.init_cfg = None
    with pytest.raises(ValueError, match='pretrained backbone'):
        demo_lib.backbone_option(cfg, 'b.pth')


def test_extracted_backbone_loads_into_the_student(tmp_path):
    """extract_backbone writes what the student's Pretrained init_cfg reads:
    after init_weights the detector's backbone holds the pretrained
    classifier's backbone weights."""
    from mmengine.registry import DefaultScope

    from mmkdflow.registry import MODELS
    pre_cfg = Config.fromfile(osp.join(
        demo.DEMO, 'pretrain_atss-r18c8_1xb32-6e_digits-cls.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = MODELS.build(pre_cfg.model)
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=classifier.state_dict(), meta={}), ckpt)
    stamp = dict(fingerprint='abc', checkpoint=str(ckpt))
    out = demo_lib.extract_backbone(stamp,
                                    str(tmp_path / 'b' / 'backbone.pth'))
    saved = torch.load(out, weights_only=True)['state_dict']
    assert saved and all(k.startswith('backbone.') for k in saved)
    cfg = Config.fromfile(osp.join(
        demo.DEMO, 'student_atss-r18c8_fpn_1xb16-8e_digits-det.py'))
    cfg.model.backbone.init_cfg.checkpoint = out
    with DefaultScope.overwrite_default_scope('mmdet'):
        detector = MODELS.build(cfg.model)
    detector.init_weights()
    for key, value in classifier.backbone.state_dict().items():
        assert torch.equal(detector.backbone.state_dict()[key], value), key
    # same fingerprint: not rewritten; another one: rewritten
    mtime = os.stat(out).st_mtime_ns
    assert demo_lib.extract_backbone(stamp, out) == out
    assert os.stat(out).st_mtime_ns == mtime
    demo_lib.extract_backbone(dict(stamp, fingerprint='def'), out)
    assert json.load(open(out + '.json'))['fingerprint'] == 'def'


def test_cache_is_invalidated_when_the_config_changes(tmp_path,
                                                      monkeypatch):
    """cached_run trains once, reuses while the resolved config, options
    and dependencies are unchanged, and retrains when any changes."""
    calls = []

    def fake_train(config, work_dir, seed, label, metric, options,
                   threads=None, progress=True):
        calls.append((config, threads, seed))
        os.makedirs(work_dir, exist_ok=True)
        ckpt = osp.join(work_dir, f'epoch_{len(calls)}.pth')
        open(ckpt, 'w').close()
        with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
            f.write(ckpt)

    monkeypatch.setattr(demo_training, 'train', fake_train)
    base = osp.join(demo.DEMO,
                    'pretrain_atss-r18c8_1xb32-6e_digits-cls.py')
    config = tmp_path / 'backbone.py'
    config.write_text(f'_base_ = [{base!r}]\n')
    work_dir = str(tmp_path / 'run')

    def run(**kwargs):
        return demo_lib.cached_run(str(config), work_dir, 'b', 'accuracy/top1',
                               **kwargs)

    first = run()
    assert len(calls) == 1
    assert run() == first and len(calls) == 1  # reused
    config.write_text(f'_base_ = [{base!r}]\n'
                      'model = dict(backbone=dict(base_channels=4))\n')
    second = run()  # the backbone's config changed
    assert len(calls) == 2 and second['fingerprint'] != first['fingerprint']
    assert run() == second and len(calls) == 2
    run(depends=['other-backbone'])  # e.g. the teacher's backbone changed
    assert len(calls) == 3
    run(depends=['other-backbone'], options=['train_cfg.max_epochs=1'])
    assert len(calls) == 4
    os.remove(run(depends=['other-backbone'],
                  options=['train_cfg.max_epochs=1'])['checkpoint'])
    run(depends=['other-backbone'], options=['train_cfg.max_epochs=1'])
    assert len(calls) == 5  # its checkpoint is gone
    run(depends=['other-backbone'], options=['train_cfg.max_epochs=1'],
        retrain=True)
    assert len(calls) == 6
    # another thread count changes the float results: retrained, with it
    run(depends=['other-backbone'], options=['train_cfg.max_epochs=1'],
        threads=1)
    assert len(calls) == 7 and calls[-1][1:] == (1, 0)
    # another seed (--teacher-seed) is another run: retrained, with it
    run(depends=['other-backbone'], options=['train_cfg.max_epochs=1'],
        threads=1, seed=2)
    assert len(calls) == 8 and calls[-1][1:] == (1, 2)


def test_the_teacher_depends_on_its_backbone():
    teacher = osp.join(demo.DEMO,
                       'teacher_atss-r18_fpn_1xb16-12e_digits-det.py')
    assert demo_lib.fingerprint(teacher, depends=['a']) != \
        demo_lib.fingerprint(teacher, depends=['b'])


def test_smoke_and_tuning_options_apply():
    det = Config.fromfile(osp.join(
        demo.DEMO,
        'pkd_atss-r18_atss-r18c8_fpn_1xb16-8e_digits-det.py'))
    cfg = with_options(det, demo_lib.run_options(det, smoke=True, tune=True))
    assert cfg.train_cfg.max_epochs == 2
    assert cfg.train_dataloader.dataset.indices == 16
    assert cfg.train_dataloader.dataset.data_root == 'data/digits_det_tune/'
    assert cfg.val_dataloader.dataset.digits_options.holdout == 'tune'
    assert cfg.val_evaluator.ann_file == \
        'data/digits_det_tune/annotations/val.json'
    seg = Config.fromfile(osp.join(
        demo.DEMO, 'student_deeplabv3-r18c16_1xb8-600it_digits-seg.py'))
    cfg = with_options(seg, demo_lib.run_options(seg, smoke=True))
    assert cfg.train_cfg.max_iters == 4
    assert cfg.val_dataloader.dataset.data_root == 'data/digits_seg/'
    assert demo_lib.run_options(seg) == []


def test_progress_line():
    line = ('2026/11/22 23:36:01 - mmengine - INFO - Epoch(train)  '
            '[2][ 10/200]  lr: 5.0000e-03  eta: 0:01:00  time: 0.0500  '
            'loss: 1.0821  loss_cls: 0.8000')
    assert demo_lib.progress_line(line) == 'epoch [2][10/200]  loss 1.0821'
    assert demo_lib.progress_line(
        'Iter(train) [30/100]  lr: 1e-3  loss: 2.5') == \
        'iter [30/100]  loss 2.5'
    assert demo_lib.progress_line(
        'Epoch(val) [5][13/13]  coco/bbox_mAP: 0.1') is None


def _last_logged(work_dir: str, metric: str) -> float:
    """The metric of the last validation line of a run's text log."""
    stamp = sorted(d for d in os.listdir(work_dir)
                   if osp.isfile(osp.join(work_dir, d, d + '.log')))[-1]
    with open(osp.join(work_dir, stamp, stamp + '.log')) as f:
        values = re.findall(re.escape(metric) + r': (-?[0-9.]+)', f.read())
    return float(values[-1])


# one distillation method per task keeps the three runs near 10 minutes on
# a busy 2-core machine (every run is a subprocess that imports mmdet /
# mmseg / mmpretrain); every config is built and stepped in
# tests/test_configs.py
SMOKE_METHODS = {'det': ['student', 'fmkt'],
                 'seg': ['student', 'fmkt'],
                 'cls': ['student', 'kd']}


@pytest.mark.slow
@pytest.mark.parametrize('task', sorted(SMOKE_METHODS))
def test_printed_numbers_are_the_logged_ones(tmp_path, task):
    """The whole demo (backbones, teacher, methods, report) on a few images:
    every number it prints is the run's logged metric (x 100 only for the
    COCO mAP, which mmdet logs as a fraction)."""
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'demo.py'), '--smoke',
         '--task', task, '--work-dir', str(tmp_path), '--methods',
         *SMOKE_METHODS[task], '--fmkt-steps', '1', '2'],
        cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    spec = demo.TASKS[task]
    metric, scale = spec['metric'], 100.0 if task == 'det' else 1.0
    rows = {line.split('|')[1].strip(): line.split('|')[2].strip()
            # the report's table (the FM-KT steps table comes after it)
            for line in proc.stdout.split('\ntable: ')[0].splitlines()
            if line.startswith('| ') and not line.startswith('| model')}
    work = tmp_path / task
    expected = {'teacher': _last_logged(str(work / 'teacher'), metric)}
    for method in SMOKE_METHODS[task]:
        expected[spec['methods'][method][0]] = _last_logged(
            str(work / method / 'seed0'), metric)
    assert set(rows) == set(expected)
    for label, logged in expected.items():
        assert rows[label] == f'{scale * logged:.1f}', label
    report = json.loads((work / 'results.json').read_text())
    assert report['metric'] == metric and report['scale'] == scale
    for name in ('results.png', 'curves.png'):
        assert (work / name).read_bytes()[:4] == b'\x89PNG'
    if task == 'det':  # the exported FM-KT student at N = 1 and 2 steps
        steps = json.loads((work / 'fmkt_steps.json').read_text())
        assert [r['steps'] for r in steps] == [1, 2]
        for row in steps:
            logged = _last_logged(str(work / 'fmkt_steps' /
                                      f'N{row["steps"]}'), metric)
            assert f'{row["value"]:.1f}' == f'{100 * logged:.1f}'
        assert (work / 'fmkt_steps.png').read_bytes()[:4] == b'\x89PNG'


def test_test_log_values():
    text = ('2026/12/01 08:00:00 - mmengine - INFO - Epoch(test) [ 50/200]'
            '    eta: 0:00:03  time: 0.0300  data_time: 0.0010\n'
            '2026/12/01 08:00:05 - mmengine - INFO - Epoch(test) [200/200]'
            '    coco/bbox_mAP: 0.2340  coco/bbox_mAP_50: 0.4000  '
            'data_time: 0.0011  time: 0.0250\n')
    assert demo_lib.test_log_values(text, 'coco/bbox_mAP') == dict(
        value=0.234, time=0.025)
    with pytest.raises(RuntimeError, match='no test line with mIoU'):
        demo_lib.test_log_values(text, 'mIoU')


def test_run_pool_runs_jobs_side_by_side_in_order():
    """At most ``jobs`` jobs at once (and that many do run together), started
    in submission order, each future holding its job's result."""
    import threading
    lock, running, peak = threading.Lock(), [0], [0]
    two_running = threading.Event()

    def job(name):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            if running[0] == 2:
                two_running.set()
        # Each job waits until a second one runs beside it (or gives up
        # after 5 s, which a pool that runs one at a time would need).
        two_running.wait(timeout=5)
        with lock:
            running[0] -= 1
        return name.upper()

    with demo_lib.RunPool(2) as pool:
        futures = [pool.submit(job, f'run{i}') for i in range(5)]
    assert peak[0] == 2
    assert [f.result() for f in futures] == [f'RUN{i}' for i in range(5)]

    # The order, without the thread scheduler's say: one job at a time.
    started = []
    with demo_lib.RunPool(1) as pool:
        for i in range(4):
            pool.submit(started.append, f'run{i}')
    assert started == [f'run{i}' for i in range(4)]


def test_run_pool_stops_everything_on_the_first_failure():
    """The first failure is re-raised at the end of the block, the queued
    jobs never start, and the other training subprocesses are stopped."""
    sleeper = subprocess.Popen([sys.executable, '-c',
                                'import time; time.sleep(120)'])
    demo_training._LIVE.add(sleeper)
    started = []

    def fail():
        raise SystemExit('teacher failed (exit 1)')

    try:
        with pytest.raises(SystemExit, match='teacher failed'):
            with demo_lib.RunPool(1) as pool:
                failed = pool.submit(fail)
                queued = pool.submit(started.append, 'kd')
                with pytest.raises(SystemExit):
                    failed.result(timeout=10)
                # Submitted after the failure: dropped, not an error that
                # would hide the failure.
                late = pool.submit(started.append, 'alone')
        assert sleeper.wait(timeout=10) != 0  # terminated, not finished
        assert started == []
        assert queued.cancelled() and late.cancelled()
    finally:
        demo_training._LIVE.discard(sleeper)
        sleeper.kill()
    with pytest.raises(ValueError, match='--jobs must be at least 1'):
        demo_lib.RunPool(0)


def test_train_sets_the_thread_count_of_its_subprocess(monkeypatch,
                                                        tmp_path):
    """``threads`` reaches the run as OMP_NUM_THREADS / MKL_NUM_THREADS
    (None leaves the environment alone), and is part of the cache's
    fingerprint."""
    seen = {}

    class FakeRun:
        def __init__(self, cmd, env, **kwargs):
            seen['env'] = env
            self.stdout, self.returncode = iter([]), 0

        def wait(self):
            return 0

        def poll(self):
            return 0

    import mmkdflow_tools.reporting as reporting
    monkeypatch.setattr(demo_training.subprocess, 'Popen', FakeRun)
    monkeypatch.setattr(reporting, 'read_run',
                        lambda work_dir, metric: reporting.RunRecord(
                            work_dir, work_dir, metric, 0.5))
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    config = osp.join(demo.DEMO, 'pretrain_atss-r18c8_1xb32-6e_digits-cls.py')
    demo_lib.train(config, str(tmp_path), 0, 'x', 'accuracy/top1', [],
                   threads=1, progress=False)
    assert seen['env']['OMP_NUM_THREADS'] == '1'
    assert seen['env']['MKL_NUM_THREADS'] == '1'
    demo_lib.train(config, str(tmp_path), 0, 'x', 'accuracy/top1', [])
    assert 'OMP_NUM_THREADS' not in seen['env']
    assert not demo_training._LIVE  # finished runs are forgotten


def test_jobs_threads_and_teacher_seed_are_checked(capsys):
    args = demo.parse_args([])
    assert (args.jobs, args.threads) == (2, 1)
    for flag in ('--jobs', '--threads'):
        with pytest.raises(SystemExit):
            demo.parse_args([flag, '0'])
        assert f'{flag} must be at least 1, got 0' in capsys.readouterr().err
    assert demo.parse_args([]).teacher_seed == 0
    with pytest.raises(SystemExit):
        demo.parse_args(['--teacher-seed', '-1'])
    assert ('--teacher-seed must be at least 0, got -1'
            in capsys.readouterr().err)


def test_another_teacher_seed_trains_another_teacher_elsewhere(
        monkeypatch, tmp_path):
    """--teacher-seed seeds the backbones' pretraining (and so the teacher)
    and keeps that realisation's cache apart from the default one's."""
    seen = []

    class Stop(Exception):
        pass

    def fake_cached_run(config, work_dir, label, metric, options=(),
                        depends=(), retrain=False, threads=None, seed=0):
        seen.append((work_dir, seed))
        raise Stop

    monkeypatch.setattr(demo, 'cached_run', fake_cached_run)
    for argv, where, seed in (([], 'det', 0),
                              (['--teacher-seed', '2'], 'det_teacher-seed2',
                               2),
                              (['--tune', '--teacher-seed', '1'],
                               'det_tune_teacher-seed1', 1)):
        args = demo.parse_args(['--work-dir', str(tmp_path), *argv])
        with pytest.raises(Stop):
            demo.run_task('det', args)
        work_dir, used = seen.pop()
        assert used == seed
        assert work_dir.startswith(str(tmp_path / where / 'backbones'))
