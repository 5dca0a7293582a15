"""mmkdflow: FM-KT and DiffKD knowledge distillation for OpenMMLab."""
from .utils.checkpoint import allow_mmengine_types

__version__ = '0.1.0'

# torch >= 2.6 loads checkpoints with weights_only=True; allow-list the few
# types MMEngine's own checkpoints contain so resume and load_from work.
allow_mmengine_types()

from . import engine, models  # noqa: E402,F401
from .registry import DATASETS, HOOKS, LOOPS, MODELS  # noqa: E402,F401
