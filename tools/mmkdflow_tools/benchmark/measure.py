"""Measuring one piece of work: wall time, peak memory, FLOPs, parameters."""
import gc
import statistics
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

#: How FLOPs are counted (stated in every report).
FLOP_METHOD = ('mmengine.analysis.FlopAnalyzer on the forward pass (one '
               'multiply-add = 1 FLOP, the fvcore convention mmdet reports; '
               'element-wise ops such as activations, schedule arithmetic '
               'and losses are not counted); fwd+bwd time is read against '
               'forward FLOPs for every piece alike')

MEMORY_METHODS = {
    'cuda': 'torch.cuda.max_memory_allocated minus the memory allocated '
            'before the run',
    'cpu': 'torch.profiler (profile_memory=True): the highest running sum of '
           'the CPU allocator\'s allocations and frees during one run',
}


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (no-op on CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_side_by_side(fns: Dict[str, Callable[[], None]],
                      device: torch.device,
                      warmup: int = 1,
                      repeats: int = 3) -> Dict[str, Dict[str, object]]:
    """Time several pieces of work on the same inputs, interleaved.

    Every function first runs ``warmup`` times; then ``repeats`` rounds run
    each function once in turn (so a change of machine load affects all
    pieces alike), each call timed alone between device synchronisations.

    Args:
        fns: Name -> zero-argument callable doing one unit of work.
        device: The device the work runs on (for synchronisation).
        warmup: Untimed calls per function.
        repeats: Timed calls per function (>= 1).

    Returns:
        Name -> ``dict(median_s, min_s, max_s, times_s)``.
    """
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {
        name: dict(median_s=statistics.median(values), min_s=min(values),
                   max_s=max(values), times_s=values)
        for name, values in times.items()
    }


def _profiler_peak(fn: Callable[[], None]) -> Optional[int]:
    """Peak of the running sum of CPU allocations during ``fn``."""
    from torch.profiler import ProfilerActivity, profile
    try:
        from torch._C._profiler import _EventType
    except ImportError:  # pragma: no cover - very old or new torch
        return None
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        fn()
    events: List[Tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation:
            fields = node.extra_fields
            if fields.device.type == 'cpu':
                events.append((node.start_time_ns, fields.alloc_size))
        stack.extend(node.children)
    running = peak = 0
    for _, size in sorted(events):
        running += size
        peak = max(peak, running)
    return peak


def peak_memory(fn: Callable[[], None],
                device: torch.device) -> Tuple[Optional[int], str]:
    """Peak memory that one call of ``fn`` adds, in bytes, and the method.

    On CUDA: ``torch.cuda.max_memory_allocated`` relative to the memory
    allocated before the call. On CPU (``tracemalloc`` does not see torch's
    allocator): the profiler's allocation events, the highest running sum
    of allocated minus freed bytes during the call (tensors only, like the
    CUDA number). ``None`` when the profiler gives no allocation events.
    """
    gc.collect()
    if device.type == 'cuda':
        synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base,
                MEMORY_METHODS['cuda'])
    return _profiler_peak(fn), MEMORY_METHODS['cpu']


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters()
               if p.requires_grad or not trainable_only)


def count_flops(module: nn.Module, inputs: Sequence[torch.Tensor]) -> int:
    """Forward FLOPs of ``module(*inputs)`` counted by
    :class:`mmengine.analysis.FlopAnalyzer` (one multiply-add = 1 FLOP).

    The module is traced with ``torch.jit``; gradients are not recorded,
    so no autograd state is left behind.
    """
    from mmengine.analysis import FlopAnalyzer
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')
        analyzer = FlopAnalyzer(module, tuple(inputs))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        analyzer.tracer_warnings('none')
        return int(analyzer.total())


def zero_grad(*modules: nn.Module,
              tensors: Sequence[torch.Tensor] = ()) -> None:
    """Drop the gradients of modules and leaf tensors (``None``, like
    ``optimizer.zero_grad(set_to_none=True)``)."""
    for module in modules:
        for p in module.parameters():
            p.grad = None
    for t in tensors:
        t.grad = None
