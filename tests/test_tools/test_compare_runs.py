"""tools/compare_runs.py on small fake work dirs with known numbers: the
table's values are the logged ones (x 100 only for COCO fractions), the gap,
time ratio and verdicts follow their formulas, and the figures are written."""
import json
import os
import os.path as osp
import re
import statistics

import pytest
from utils.e2e import load_tool

from mmkdflow_tools.reporting import (metric_scale, mean_curve, pick_metric,
                                      read_run, read_runs, seed_dirs,
                                      summarise, verdict)

PNG = b'\x89PNG\r\n\x1a\n'


def fake_run(work_dir, metric, curve, times, by_epoch=True,
             stamp='20260101_000000', extra=None):
    """A work dir as MMEngine leaves it: ``<stamp>/vis_data/scalars.json``
    (training windows, then one validation record per epoch) and the text
    log ``<stamp>/<stamp>.log`` with the same validation lines."""
    log_dir = work_dir / stamp
    (log_dir / 'vis_data').mkdir(parents=True)
    records, text, it = [], [], 0
    per_epoch = -(-len(times) // len(curve))  # ceil
    for epoch, value in enumerate(curve, 1):
        for t in times[(epoch - 1) * per_epoch:epoch * per_epoch]:
            it += 10
            record = dict(lr=0.01, data_time=0.001, loss=1.0 / it, time=t,
                          iter=it, step=it)
            if by_epoch:
                record['epoch'] = epoch
            records.append(record)
        step = epoch if by_epoch else it
        records.append({metric: value, 'data_time': 0.01, 'time': 0.02,
                        'step': step, **(extra or {})})
        where = f'Epoch(val) [{step}][13/13]' if by_epoch \
            else 'Iter(val) [13/13]'
        text.append(f'2026/01/01 00:00:00 - mmengine - INFO - {where}'
                    f'    {metric}: {value:.4f}  data_time: 0.0100  '
                    f'time: 0.0200')
    (log_dir / 'vis_data' / 'scalars.json').write_text(
        '\n'.join(json.dumps(r) for r in records) + '\n')
    (log_dir / f'{stamp}.log').write_text('\n'.join(text) + '\n')
    return work_dir


def logged_final(work_dir, metric):
    """The last validation value of the text log, read independently of the
    tool (what a user sees in the log)."""
    logs = sorted(osp.join(str(work_dir), d) for d in os.listdir(work_dir))
    text = open(osp.join(logs[-1], osp.basename(logs[-1]) + '.log')).read()
    return float(re.findall(re.escape(metric) + r': ([0-9.]+)', text)[-1])


@pytest.fixture
def det_dirs(tmp_path):
    """Teacher 0.330; student 0.100 / 0.120; PKD 0.180 / 0.160; FM-KT
    0.250 / 0.230; DiffKD 0.120 / 0.100 (mAP logged as fractions)."""
    m = 'coco/bbox_mAP'
    fake_run(tmp_path / 'teacher', m, [0.2, 0.33], [0.5] * 4)
    values = dict(student=(0.10, 0.12), pkd=(0.18, 0.16),
                  fmkt=(0.25, 0.23), diffkd=(0.12, 0.10))
    times = dict(student=0.05, pkd=0.1, fmkt=0.15, diffkd=0.2)
    for name, (v0, v1) in values.items():
        for seed, v in enumerate((v0, v1)):
            # the first window (warm-up, 9 s) is left out of the median
            fake_run(tmp_path / name / f'seed{seed}', m, [v / 2, v],
                     [9.0] + [times[name]] * 5)
    return tmp_path


def test_metric_scale():
    assert metric_scale('coco/bbox_mAP') == 100.0
    assert metric_scale('mIoU') == 1.0  # mmseg logs percentages
    assert metric_scale('accuracy/top1') == 1.0  # so does mmpretrain


def test_read_run_takes_the_last_validation_and_median_time(tmp_path):
    run = fake_run(tmp_path / 'r', 'accuracy/top1', [40.0, 55.5, 61.25],
                   [9.0, 0.2, 0.4, 0.3, 0.3, 0.3])
    record = read_run(str(run), 'accuracy/top1')
    assert record.final == 61.25 and record.value == 61.25
    assert record.curve == [(1, 40.0), (2, 55.5), (3, 61.25)]
    assert record.by_epoch
    assert record.iter_time == pytest.approx(0.3)
    with pytest.raises(KeyError, match="no validation record with 'mIoU'.*"
                       "accuracy/top1"):
        read_run(str(run), 'mIoU')
    with pytest.raises(FileNotFoundError, match='finished MMEngine run'):
        read_run(str(tmp_path / 'missing'), 'mIoU')


def test_newest_launch_wins(tmp_path):
    fake_run(tmp_path / 'r', 'mIoU', [10.0], [0.1, 0.1])
    fake_run(tmp_path / 'r', 'mIoU', [20.0], [0.1, 0.1],
             stamp='20260102_000000', by_epoch=False)
    record = read_run(str(tmp_path / 'r'), 'mIoU')
    assert record.final == 20.0 and not record.by_epoch
    assert record.curve == [(20, 20.0)]  # iteration-based: step = iter


def test_seed_dirs(det_dirs):
    assert seed_dirs(str(det_dirs / 'pkd')) == [
        str(det_dirs / 'pkd' / 'seed0'), str(det_dirs / 'pkd' / 'seed1')]
    assert seed_dirs(str(det_dirs / 'teacher')) == [str(det_dirs /
                                                        'teacher')]
    with pytest.raises(FileNotFoundError, match='neither a work dir'):
        seed_dirs(str(det_dirs / 'nothing'))
    assert pick_metric(str(det_dirs / 'teacher')) == 'coco/bbox_mAP'


def test_verdict():
    assert verdict([20, 22], [10, 12]) == 'better'
    assert verdict([10, 14], [11, 12]) == 'within spread'
    assert verdict([5, 6], [10, 12]) == 'worse'
    assert verdict([15], [10, 12]) == 'higher (1 seed)'
    assert verdict([9], [10]) == 'lower (1 seed)'


def test_rows_follow_their_formulas(det_dirs):
    m = 'coco/bbox_mAP'
    methods = {name: read_runs([str(det_dirs / key)], m) for name, key in
               (('PKD', 'pkd'), ('FM-KT', 'fmkt'), ('DiffKD', 'diffkd'))}
    rows = summarise(read_runs([str(det_dirs / 'teacher')], m),
                     read_runs([str(det_dirs / 'student')], m), methods,
                     baseline='PKD')
    teacher, student, pkd, fmkt, diffkd = rows
    assert teacher.mean == pytest.approx(33.0)
    assert student.values == pytest.approx([10.0, 12.0])
    assert student.sd == pytest.approx(statistics.stdev([10, 12]))
    assert student.rel_time == 1.0 and student.gap is None
    # (17 - 11) / (33 - 11)
    assert pkd.gap == pytest.approx(100 * 6 / 22)
    assert fmkt.gap == pytest.approx(100 * 13 / 22)
    assert pkd.rel_time == pytest.approx(2.0)
    assert diffkd.rel_time == pytest.approx(4.0)
    assert pkd.vs_student == 'better' and pkd.vs_baseline == ''
    assert fmkt.vs_baseline == 'better'
    assert diffkd.vs_student == 'within spread'
    assert diffkd.vs_baseline == 'worse'


def test_tool_prints_the_logged_numbers(det_dirs, capsys):
    tool = load_tool('compare_runs')
    out = det_dirs / 'report'
    assert tool.main([
        '--teacher', str(det_dirs / 'teacher'),
        '--student', str(det_dirs / 'student'),
        '--method', 'PKD', str(det_dirs / 'pkd' / 'seed0'),
        str(det_dirs / 'pkd' / 'seed1'),
        '--method', 'FM-KT', str(det_dirs / 'fmkt'),
        '--method', 'DiffKD', str(det_dirs / 'diffkd'),
        '--baseline', 'PKD', '--title', 'fake det', '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'fake det (2 seeds)' in printed
    assert '| model | mAP | per seed | gap closed | time/iter vs student | ' \
        'vs student alone | vs PKD |' in printed
    assert '| teacher | 33.0 |  |  |  |  |  |' in printed
    assert '| student alone | 11.0 ± 1.4 | 10.0 / 12.0 |  | 1.00x |  |  |' \
        in printed
    assert '| PKD | 17.0 ± 1.4 | 18.0 / 16.0 | 27% | 2.00x | better |  |' \
        in printed
    assert '| FM-KT | 24.0 ± 1.4 | 25.0 / 23.0 | 59% | 3.00x | better | ' \
        'better |' in printed
    assert '| DiffKD | 11.0 ± 1.4 | 12.0 / 10.0 | 0% | 4.00x | ' \
        'within spread | worse |' in printed
    # every printed per-seed value is the value in that run's text log
    for name in ('student', 'pkd', 'fmkt', 'diffkd'):
        logged = [logged_final(det_dirs / name / f'seed{s}',
                               'coco/bbox_mAP') for s in (0, 1)]
        assert ' / '.join(f'{100 * v:.1f}' for v in logged) in printed
    numbers = json.loads((out / 'results.json').read_text())
    assert numbers['metric'] == 'coco/bbox_mAP' and numbers['scale'] == 100
    assert numbers['rows'][2]['logged'] == [0.18, 0.16]
    for name in ('results.png', 'curves.png'):
        assert (out / name).read_bytes()[:8] == PNG
    assert (out / 'results.md').read_text().startswith('fake det')


@pytest.mark.parametrize('metric', ['mIoU', 'accuracy/top1'])
def test_percentage_metrics_are_printed_as_logged(tmp_path, capsys, metric):
    fake_run(tmp_path / 't', metric, [86.1111], [0.1] * 3)
    fake_run(tmp_path / 's', metric, [56.3889], [0.1] * 3)
    fake_run(tmp_path / 'k', metric, [60.8333], [0.1] * 3)
    tool = load_tool('compare_runs')
    tool.main(['--teacher', str(tmp_path / 't'), '--student',
               str(tmp_path / 's'), '--method', 'KD', str(tmp_path / 'k'),
               '--out', str(tmp_path / 'o')])
    printed = capsys.readouterr().out
    assert '| teacher | 86.1 |' in printed  # not 8611.1
    assert '| student alone | 56.4 |' in printed
    assert '| KD | 60.8 |  | 15% | 1.00x | higher (1 seed) |' in printed
    assert f'{logged_final(tmp_path / "k", metric):.1f}' == '60.8'


def test_mean_curve_over_seeds(det_dirs):
    runs = read_runs([str(det_dirs / 'pkd')], 'coco/bbox_mAP')
    points = mean_curve(runs)
    assert [p[0] for p in points] == [1, 2]
    assert points[1][1] == pytest.approx(17.0)
    assert points[0][1] == pytest.approx(8.5)


def test_bad_command_lines(det_dirs):
    tool = load_tool('compare_runs')
    with pytest.raises(SystemExit):
        tool.parse_args(['--teacher', 't', '--student', 's', '--method',
                         'PKD', '--out', 'o'])
    with pytest.raises(SystemExit):
        tool.parse_args(['--teacher', 't', '--student', 's', '--method',
                         'PKD', 'd', '--baseline', 'KD', '--out', 'o'])
