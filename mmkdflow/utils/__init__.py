from .atomic_files import save_atomic, write_text_atomic
from .checkpoint_loading import (CheckpointError, check_checkpoint_file,
                                 extract_state_dict, load_checkpoint_file,
                                 load_weights_strictly)
from .safe_globals import allow_mmengine_types

__all__ = ['CheckpointError', 'allow_mmengine_types', 'check_checkpoint_file',
           'extract_state_dict', 'load_checkpoint_file',
           'load_weights_strictly', 'save_atomic', 'write_text_atomic']
