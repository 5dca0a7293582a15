"""mmkdflow: FM-KT and DiffKD knowledge distillation for OpenMMLab."""
from .version import __version__  # noqa: F401

from .compat import check_core_versions  # noqa: E402,I001

# torch, mmcv and mmengine inside the supported range (mmkdflow.version),
# checked before anything of theirs is used, with mmkdflow's message.
check_core_versions()

from . import engine, models  # noqa: E402,F401
from .registry import DATASETS, HOOKS, LOOPS, MODELS  # noqa: E402,F401
