"""Mixed precision without CUDA: bf16 autocast around the forward pass."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from mmkdflow.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """An ``OptimWrapper`` whose ``optim_context`` runs the forward pass under
    ``torch.autocast(device_type, dtype)``.

    MMEngine's ``AmpOptimWrapper`` needs CUDA (fp16 with a loss scaler); on
    CPU, bf16 autocast needs no loss scaling, so this wrapper only adds the
    autocast region. Parameters, gradients and optimizer state stay fp32.

    Args:
        device_type (str): ``'cpu'`` or ``'cuda'``. Defaults to 'cpu'.
        dtype (str): ``'bfloat16'`` or ``'float16'``. Defaults to
            'bfloat16'.
        **kwargs: Arguments of ``OptimWrapper``.
    """

    def __init__(self, *args, device_type: str = 'cpu',
                 dtype: str = 'bfloat16', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if dtype not in ('bfloat16', 'float16'):
            raise ValueError(f"dtype must be 'bfloat16' or 'float16', got "
                             f'{dtype!r}')
        self.device_type = device_type
        self.dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(
                device_type=self.device_type, dtype=self.dtype):
            yield
