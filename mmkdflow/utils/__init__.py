from .checkpoint import (CheckpointError, allow_mmengine_types,
                         extract_state_dict, load_checkpoint_file,
                         load_weights_strictly, save_atomic)

__all__ = ['CheckpointError', 'allow_mmengine_types', 'extract_state_dict',
           'load_checkpoint_file', 'load_weights_strictly', 'save_atomic']
