"""mmkdflow: FM-KT and DiffKD knowledge distillation for OpenMMLab."""
from .version import __version__  # noqa: F401

from .compat import check_core_versions  # noqa: E402,I001

# torch, mmcv and mmengine inside the supported range (mmkdflow.version),
# checked before anything of theirs is used, with mmkdflow's message.
check_core_versions()

from .utils.mmengine_loading import register_mmengine_loaders  # noqa
from .utils.safe_globals import allow_mmengine_types  # noqa: E402

# Safe loading on every torch of the range: allow-list the few types
# MMEngine's own checkpoints contain (so resume and load_from work), and
# read MMEngine's local and http(s) checkpoints through mmkdflow's loader
# (torch < 2.6 would unpickle anything).
allow_mmengine_types()
register_mmengine_loaders()

from . import engine, models  # noqa: E402,F401
from .registry import DATASETS, HOOKS, LOOPS, MODELS  # noqa: E402,F401
