"""Numerical precision helpers shared by losses and schedules."""
import contextlib
from typing import ContextManager

import torch


def fp32_region(device: torch.device) -> ContextManager:
    """A context in which autocast is off on ``device``.

    Losses and noise schedules compute in float32: softmax, logarithms,
    variances and ``sqrt(alpha_bar)`` of bf16 or fp16 tensors lose too much
    precision, and fp16 overflows on exp. On torch < 2.4 (no
    ``torch.amp.is_autocast_available``) autocast exists on CPU and CUDA.

    Returns:
        ContextManager: The context.
    """
    is_available = getattr(torch.amp, 'is_autocast_available', None)
    available = device.type in ('cpu', 'cuda') if is_available is None \
        else is_available(device.type)
    if available:
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()
