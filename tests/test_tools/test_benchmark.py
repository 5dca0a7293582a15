"""tools/benchmark.py --quick: every section measured, sane numbers (no
timing thresholds: the machine's load decides those); and the speed paths of
the DiffKD connector (channels-last, no host reads; the fused DDIM chain is
tested in test_diffkd_networks.py)."""
import json
import math

import pytest
import torch
from utils import connector
from utils.e2e import load_tool, run_tool

from mmkdflow_tools.benchmark import (count_flops, evaluate_goals, peak_memory,
                                      time_side_by_side)
from mmkdflow.models.core import DistillContext

CTX = DistillContext()


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and \
        value > 0


def test_measurement_helpers():
    calls = []
    timings = time_side_by_side(
        {'a': lambda: calls.append('a'), 'b': lambda: calls.append('b')},
        torch.device('cpu'), warmup=1, repeats=3)
    assert calls == ['a', 'b'] + ['a', 'b'] * 3  # interleaved rounds
    assert len(timings['a']['times_s']) == 3
    assert timings['a']['min_s'] <= timings['a']['median_s']
    with pytest.raises(ValueError):
        time_side_by_side({'a': lambda: None}, torch.device('cpu'), 0, 0)
    # one 4 MiB tensor alive at the peak, then freed: the profiler sees it
    # (and not much more: the sum is one float)
    peak, method = peak_memory(
        lambda: torch.ones(1024, 1024).sum(), torch.device('cpu'))
    assert 'profiler' in method
    assert peak is not None, 'the profiler recorded no allocation'
    assert 4 * 2**20 <= peak < 5 * 2**20
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert count_flops(conv, (torch.randn(1, 3, 5, 5), )) == 5 * 5 * 8 * 27


@pytest.mark.slow
def test_quick_benchmark_writes_every_section(tmp_path):
    out = tmp_path / 'bench.json'
    printed = run_tool('tools/benchmark.py', '--quick', '--out', str(out))
    result = json.loads(out.read_text())
    for heading in ('[a]', '[b]', '[c]', '[d] goals', '[e]'):
        assert heading in printed
    meta = result['meta']
    assert meta['device'] == 'cpu' and meta['padded_size'] == [64, 96]
    assert 'mmengine.analysis' in meta['flop_method']

    section = result['connectors']
    assert len(section['fpn_shapes']) == 5
    assert all(s[1] == 256 for s in section['fpn_shapes'])
    names = [r['name'] for r in section['connectors']]
    assert names == ['DiffKD'] + [
        f'FM-KT (N={n}, convnext{extra})' for n in (1, 4, 8)
        for extra in ('', ', checkpointed')]  # --quick: no compiled rows
    for row in [section['student']] + section['connectors']:
        for key in ('params', 'gflops', 'time_s', 's_per_gflop',
                    'time_rel_student', 'peak_mem_mb'):
            assert positive(row[key]), (row['name'], key)
    ref = section['pointwise_reference']
    for key in ('gflops', 'time_s', 's_per_gflop_rel_student'):
        assert positive(ref[key]), key
    # two 1x1 convs C -> 4C -> C (with biases) on the five levels
    positions = sum(s[0] * s[2] * s[3] for s in section['fpn_shapes'])
    assert round(ref['gflops'] * 1e9) == 8 * 256 * 256 * positions
    assert 'pointwise ceiling' in printed
    diffkd = section['connectors'][0]
    assert diffkd['params'] == 207_872 + 327_680 + 159_170  # + proj, ANM..
    fmkt = {r['name']: r for r in section['connectors']}
    # FLOPs grow with the number of steps, parameters do not
    assert fmkt['FM-KT (N=8, convnext)']['gflops'] > \
        fmkt['FM-KT (N=4, convnext)']['gflops'] > \
        fmkt['FM-KT (N=1, convnext)']['gflops']
    assert len({r['params'] for r in section['connectors'][1:]}) == 1
    for n in (1, 4, 8):  # checkpointing: same work, memory measured
        ckpt = fmkt[f'FM-KT (N={n}, convnext, checkpointed)']
        assert ckpt['checkpoint'] and not ckpt['compile'] and ckpt['n'] == n
        assert ckpt['gflops'] == fmkt[f'FM-KT (N={n}, convnext)']['gflops']
    scaling = section['flow_scaling']
    assert scaling['base_n'] == 1
    assert [p['n'] for p in scaling['variants']['plain']] == [1, 4, 8]
    assert [p['n'] for p in scaling['variants']['checkpointed']] == [1, 4, 8]
    assert 'against N, per variant' in printed
    assert (tmp_path / 'bench.png').stat().st_size > 0  # the plot

    # allocator: glibc defaults first, then mmkdflow's settings, one run
    if meta['allocator']['applied']:
        before = result['distill_step_default_malloc']['methods']
        assert set(before) == {'DiffKD', 'FM-KT (N=4)'}
        assert 'glibc default malloc' in printed

    methods = result['distill_step']['methods']
    assert set(methods) == {'DiffKD', 'FM-KT (N=4)'}
    for m in methods.values():
        assert all(positive(v) for v in m['times_s'].values())
        assert positive(m['ratio_to_student_step'])
        assert math.isfinite(m['overhead_rel_student_step'])
        g = m['gflops']
        assert g['distill'] == pytest.approx(
            g['student'] + g['teacher'] + g['connector'])
        assert g['teacher'] > g['student'] > g['connector'] > 0

    rows = {r['name']: r for r in result['export']['models']}
    assert list(rows) == ['vanilla student', 'DiffKD export',
                          'FM-KT (N=4) export', 'FM-KT-Theta (N=4) export']
    vanilla = rows['vanilla student']
    for name in ('DiffKD export', 'FM-KT-Theta (N=4) export'):
        assert rows[name]['kind'] == 'student'
        assert rows[name]['same_as_vanilla']
        assert rows[name]['params'] == vanilla['params']
        assert rows[name]['gflops'] == vanilla['gflops']
    flow = rows['FM-KT (N=4) export']
    assert flow['kind'] == 'student+flow' and not flow['same_as_vanilla']
    assert flow['params'] > vanilla['params']
    assert flow['gflops'] > vanilla['gflops']
    assert all(positive(r['time_s']) for r in rows.values())

    # where the time goes: four classes that add up, the GEMMs a part
    breakdown = result['breakdown']
    assert [r['name'] for r in breakdown['connectors']] == [
        'DiffKD', 'FM-KT (N=1, convnext)']
    for row in [breakdown['student']] + breakdown['connectors']:
        assert sum(row['shares'].values()) == pytest.approx(1.0)
        assert sum(row['seconds'].values()) == pytest.approx(row['total_s'])
        assert 0 < row['shares']['gemm'] < 1
        assert row['gemm_s_per_gflop_rel_student'] < \
            row['s_per_gflop_rel_student']

    # every goal's value is the measured number and ``met`` its comparison
    # with the goal's threshold (the formulas: test_goals_from_known_numbers)
    goals = result['goals']
    connector_goals = goals[:len(section['connectors'])]
    for goal, row in zip(connector_goals, section['connectors']):
        assert row['name'] in goal['goal']
        assert goal['value'] == row['s_per_gflop_rel_student']
    step_values = [m['overhead_rel_student_step'] for m in methods.values()]
    assert [g['value'] for g in goals if 'step' in g['goal'] and
            not g.get('informative')] == step_values
    for goal in goals:
        if goal['threshold'] is not None:
            assert goal['met'] == (goal['value'] is not None and
                                   goal['value'] <= goal['threshold'])
    exports = [g for g in goals if 'export' in g['goal']]
    assert [g['met'] for g in exports] == [
        rows[name]['same_as_vanilla']
        for name in ('DiffKD export', 'FM-KT-Theta (N=4) export')]
    before = 2 if meta['allocator']['applied'] else 0
    # 7 connector rows, checkpoint memory, 2 steps (+ 2 before), 2 exports
    assert len(goals) == 7 + 1 + 2 + before + 2
    assert all(isinstance(g['met'], bool) for g in goals)
    assert sum(bool(g.get('informative')) for g in goals) == before


def test_goals_from_known_numbers():
    """Each goal from numbers chosen by hand: connectors at most 1.1x the
    student's s/GFLOP, checkpointed flow memory at the largest N at most
    1.5x plain N=1, step overhead at most 5% (the default-malloc rows only
    informative), zero-cost exports exactly the vanilla student."""
    result = dict(
        connectors=dict(
            connectors=[dict(name='A', s_per_gflop_rel_student=1.0),
                        dict(name='B', s_per_gflop_rel_student=1.2),
                        dict(name='C')],  # not measured
            flow_scaling=dict(base_n=1, variants=dict(checkpointed=[
                dict(n=1, mem_rel_plain_n_min=1.0),
                dict(n=8, mem_rel_plain_n_min=1.6)]))),
        distill_step=dict(methods={
            'DiffKD': dict(overhead_rel_student_step=0.04),
            'FM-KT (N=4)': dict(overhead_rel_student_step=0.06)}),
        distill_step_default_malloc=dict(methods={
            'DiffKD': dict(overhead_rel_student_step=0.30)}),
        export=dict(models=[
            dict(name='vanilla student', time_rel_student=1.0,
                 same_as_vanilla=True),
            dict(name='DiffKD export', time_rel_student=1.0,
                 same_as_vanilla=True),
            dict(name='FM-KT-Theta (N=4) export', time_rel_student=1.01,
                 same_as_vanilla=False)]))
    goals = evaluate_goals(result)
    assert [(g['value'], g['threshold'], g['met'],
             bool(g.get('informative'))) for g in goals] == [
        (1.0, 1.1, True, False), (1.2, 1.1, False, False),
        (None, 1.1, False, False),
        (1.6, 1.5, False, False),  # N=8, the largest
        (0.04, 0.05, True, False), (0.06, 0.05, False, False),
        (0.30, 0.05, False, True),
        (1.0, None, True, False), (1.01, None, False, False)]
    for goal, name in zip(goals, ['A', 'B', 'C', 'N=8', 'DiffKD',
                                  'FM-KT (N=4)', 'DiffKD', 'DiffKD export',
                                  'FM-KT-Theta (N=4) export']):
        assert name in goal['goal']
    # sections that are absent give no goals
    assert evaluate_goals(dict(export=result['export'])) == goals[-2:]
    assert evaluate_goals({}) == []


def test_benchmark_switches():
    """The allocator, checkpoint and compile switches of the tool."""
    tool = load_tool('benchmark')
    args = tool.parse_args(['--quick', '--no-allocator-tuning'])
    assert args.no_allocator_tuning and args.compile is False
    assert args.checkpoint and args.allocator_compare
    args = tool.parse_args(['--no-checkpoint', '--compile',
                            '--no-allocator-compare'])
    from mmkdflow.compat import torch_at_least
    from mmkdflow.models.utils.compile import COMPILE_MIN_TORCH
    # below torch 2.6 the compiled rows are dropped (with a log line)
    assert not args.checkpoint
    assert args.compile == torch_at_least(COMPILE_MIN_TORCH)
    assert not args.allocator_compare


# ------------------------------------- DiffKD connector speed paths
def test_channels_last_gives_the_same_results():
    torch.manual_seed(0)
    nchw, nhwc = connector(), connector(channels_last=True)
    nhwc.load_state_dict(nchw.state_dict())
    f_s = torch.randn(2, 8, 6, 7)
    f_t = torch.randn(2, 16, 6, 7)
    assert not nchw.uses_channels_last(f_s)
    assert nhwc.uses_channels_last(f_s)
    assert not nhwc.uses_channels_last(torch.randn(2, 8, 1, 1))
    s = nchw.branches[0]['proj'](f_s)
    noise = torch.randn_like(s)
    s_cl = s.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(
        nhwc.denoise(nhwc.branches[0], s_cl, noise),
        nchw.denoise(nchw.branches[0], s, noise), rtol=1e-4, atol=1e-5)
    torch.manual_seed(1)
    out = nhwc([f_s], [f_t], CTX)
    assert out.student[0].is_contiguous(memory_format=torch.channels_last)
    assert out.student[0].shape == (2, 16, 6, 7)
    sum(out.losses.values()).backward()


class HostReads(torch.overrides.TorchFunctionMode):
    """Records tensor methods that read values on the host (device syncs
    on a GPU)."""

    READS = {'item', 'tolist', '__bool__', '__int__', '__float__',
             'numpy', 'cpu'}

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, '__name__', '')
        if name in self.READS:
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


def test_training_forward_reads_nothing_on_the_host():
    conn = connector()
    feats = [torch.randn(2, 8, 6, 6), torch.randn(2, 8, 3, 3)]
    targets = [torch.randn(2, 16, 6, 6), torch.randn(2, 16, 3, 3)]
    conn(feats, targets, CTX)  # fills the coefficient cache
    with HostReads() as reads:
        out = conn(feats, targets, CTX)
        sum(out.losses.values()).backward()
    assert reads.calls == []


def test_operators_are_sorted_into_their_classes():
    from mmkdflow_tools.benchmark.breakdown import op_class
    assert [op_class(name) for name in (
        'aten::addmm', 'aten::convolution_backward',
        'aten::mkldnn_convolution', 'aten::native_layer_norm_backward',
        'aten::native_batch_norm', 'aten::std', 'aten::gelu_backward',
        'aten::threshold_backward', 'aten::mul', 'aten::copy_')] == [
        'gemm', 'gemm', 'gemm', 'norm', 'norm', 'norm', 'activation',
        'activation', 'other', 'other']
